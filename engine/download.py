"""Fetch one file over HTTP: resumable, hash-checked, renamed into place atomically.

`engine.registry.download` calls `fetch` for each file of a registry entry; this module
knows nothing of the registry. Failures raise `DownloadError` with a message that says
what to do next.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import requests
from tqdm import tqdm

CHUNK = 1 << 20  # bytes per read from the socket and per hash update
LARGE = 1 << 20  # files at least this big are size-checked when they have no sha256


class DownloadError(RuntimeError):
    """A file could not be fetched or failed its check; the message says what to do, and
    `reason` what went wrong, in a few words (for a list of mirrors tried)."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of a chain (requests wraps urllib3 wraps the socket error)."""
    seen = {id(exc)}
    while True:
        nxt = exc.__cause__ or exc.__context__
        if nxt is None or id(nxt) in seen:
            return exc
        seen.add(id(nxt))
        exc = nxt


def _unreachable(url: str, dest: Path, exc: BaseException) -> DownloadError:
    host = urlsplit(url).hostname or url
    reason = str(_root_cause(exc)) or type(exc).__name__
    return DownloadError(
        f"could not reach {host}: {reason}; download {url} yourself and place the file at {dest}",
        f"could not be reached ({reason})",
    )


def fetch(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    approx_size: int | None = None,
    progress: bool = True,
    timeout: float = 30,
) -> Path:
    """Download `url` to `dest` unless it is already there; return `dest`.

    Bytes go to `dest` + ".part" first; a `.part` left by an interrupted run is resumed
    with an HTTP Range request (a server that ignores Range makes us start over). When
    `sha256` is given the finished file is checked and, on a mismatch, deleted; without
    one, a file far smaller than `approx_size` (an error page served as 200) is deleted.
    Only a complete, checked file is renamed to `dest`, so `dest` existing means "done".
    """
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for _attempt in range(2):  # the second attempt only after a stale .part was dropped
        if _fetch_into(url, part, dest, progress=progress, timeout=timeout):
            break
    else:
        raise DownloadError(
            f"the server keeps refusing to resume {url}; delete {part} and retry",
            "refused to resume the partial file",
        )
    size = part.stat().st_size
    far_too_small = approx_size is not None and approx_size >= LARGE and size < approx_size // 2
    if sha256 is None and far_too_small:
        part.unlink()
        raise DownloadError(
            f"{url} sent {size} bytes where about {approx_size} were expected, probably an "
            f"error page; it was deleted: download the file yourself and place it at {dest}",
            f"sent {size} bytes where about {approx_size} were expected (an error page?)",
        )
    if sha256 is not None:
        actual = sha256_of(part)
        if actual != sha256.lower():
            part.unlink()
            raise DownloadError(
                f"sha256 mismatch for {dest.name} from {url}: expected {sha256}, got {actual}; "
                "the corrupt file was deleted, run the download again",
                f"sent a file whose sha256 is {actual}, not {sha256}",
            )
    os.replace(part, dest)
    return dest


def fetch_any(
    urls: Sequence[str],
    dest: Path,
    *,
    sha256: str | None = None,
    approx_size: int | None = None,
    progress: bool = True,
    timeout: float = 30,
) -> Path:
    """fetch() from the first of `urls` (mirrors of one file, tried in order) that delivers
    it. A partial file one mirror left is resumed from the next. When none delivers, one
    DownloadError names each host tried and what went wrong there."""
    if dest.exists():
        return dest
    failures: list[tuple[str, DownloadError]] = []
    for url in urls:
        try:
            return fetch(
                url, dest, sha256=sha256, approx_size=approx_size, progress=progress,
                timeout=timeout,
            )  # fmt: skip
        except DownloadError as error:
            failures.append((url, error))
            if progress and url != urls[-1]:
                print(f"{dest.name}: {_host(url)} {error.reason}; trying the next mirror",
                      file=sys.stderr)  # fmt: skip
    if len(failures) == 1:
        raise failures[0][1]
    tried = "; ".join(f"{_host(url)} {error.reason}" for url, error in failures)
    raise DownloadError(
        f"no mirror of {dest.name} delivered it: {tried}. Download it yourself from one of "
        f"{', '.join(urls)} and place it at {dest}"
    )


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


def _fetch_into(url: str, part: Path, dest: Path, *, progress: bool, timeout: float) -> bool:
    """Append the rest of `url` to `part`; False if `part` was stale and has been removed."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        with requests.get(url, headers=headers, stream=True, timeout=timeout) as response:
            if response.status_code == 416:  # .part is as long as the file, or longer
                part.unlink()
                return False
            if response.status_code >= 400:
                raise DownloadError(
                    f"{url} answered HTTP {response.status_code} {response.reason}; "
                    f"download it yourself and place the file at {dest}",
                    f"answered HTTP {response.status_code} {response.reason}",
                )
            if response.status_code != 206:  # 200: the server sends the whole file again
                offset = 0
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else None
            with (
                open(part, "ab" if offset else "wb") as f,
                tqdm(
                    total=total,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=dest.name,
                    file=sys.stderr,
                    disable=not progress,
                ) as bar,
            ):
                for chunk in response.iter_content(CHUNK):
                    f.write(chunk)
                    bar.update(len(chunk))
    except (requests.ConnectionError, requests.Timeout) as exc:
        if part.exists() and part.stat().st_size > offset:  # we got somewhere: say so
            raise DownloadError(
                f"download of {url} was interrupted ({_root_cause(exc)}); "
                f"run it again to resume from {part}",
                f"stopped sending part way ({_root_cause(exc)}); {part} is kept to resume",
            ) from exc
        raise _unreachable(url, dest, exc) from exc
    except requests.RequestException as exc:
        raise DownloadError(
            f"download of {url} failed: {exc}; run it again to resume", f"failed ({exc})"
        ) from exc
    size = part.stat().st_size
    if total is not None and size != total:
        raise DownloadError(
            f"download of {url} stopped at {size} of {total} bytes; run it again to resume",
            f"stopped at {size} of {total} bytes; {part} is kept to resume",
        )
    return True
