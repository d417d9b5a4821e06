"""Images from outside — init images, image prompts, PNGs read for their parameters — are
opened here and nowhere else.

A file someone hands us may declare more pixels than memory holds (a "decompression bomb":
PIL raises DecompressionBombError, which is not an OSError), end early, carry megabytes of
PNG text, or be animated. `read_image` checks the declared size and the PNG text before
anything is decoded, turns every decoder failure into one ImageError line naming the file,
and keeps the first frame of an animation (with a note saying so).
"""

from __future__ import annotations

import contextlib
import io
import re
import struct
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from PIL import Image, UnidentifiedImageError

MAX_PIXELS = 8192 * 8192  # declared width × height; paintings are at most 4096 px a side
MAX_TEXT_BYTES = 1 << 20  # a PNG's text chunks together, decompressed; ours hold a few KB
_LIMIT = f"Doorways opens images of at most {MAX_PIXELS:,} pixels (8192×8192)"

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")


class ImageError(ValueError):
    """An image that cannot or may not be opened; the message is one line naming it."""


@dataclass(frozen=True)
class LoadedImage:
    """One decoded frame, and what the file said besides its pixels."""

    image: Image.Image  # RGB, loaded: the file is closed
    text: dict[str, str] = field(default_factory=dict)  # PNG text chunks
    note: str | None = None  # e.g. "x.gif is animated: its first frame is used"


def read_image(source: str | Path | bytes, name: str | None = None) -> LoadedImage:
    """Decode the first frame of an image file (or the bytes of one) into RGB.

    `name` is how messages call the image (default: the path). Raises ImageError for a
    missing file, a size over MAX_PIXELS, PNG text over MAX_TEXT_BYTES, or a file that is
    truncated or not an image.
    """
    name = name or str(source)
    with _opened(source, name) as image, _decoding(name):
        animated = bool(getattr(image, "is_animated", False))
        image.seek(0)
        image.load()
        text = _text_of(image)
        rgb = image.convert("RGB")
    note = f"{name} is animated: its first frame is used" if animated else None
    return LoadedImage(rgb, text, note)


def read_text(source: str | Path | bytes, name: str | None = None) -> dict[str, str]:
    """An image's PNG text chunks, with read_image's checks; pixels are decoded only when
    text follows them in the file."""
    name = name or str(source)
    with _opened(source, name) as image, _decoding(name):
        return _text_of(image)


def _text_of(image: Image.Image) -> dict[str, str]:
    return {key: str(value) for key, value in getattr(image, "text", {}).items()}


@contextlib.contextmanager
def _decoding(name: str) -> Iterator[None]:
    """Decoders raise all sorts on hostile bytes (OSError, SyntaxError, ValueError,
    struct.error, EOFError, …): each is this file's fault, and says so in one line."""
    try:
        yield
    except ImageError:
        raise
    except Exception as error:
        raise _unreadable(name, error) from None


@contextlib.contextmanager
def _opened(source: str | Path | bytes, name: str) -> Iterator[Image.Image]:
    """Image.open after the PNG checks, with the declared size checked; nothing decoded yet."""
    if isinstance(source, bytes):
        stream: IO[bytes] = io.BytesIO(source)
    else:
        try:
            stream = open(source, "rb")  # noqa: SIM115  # closed below
        except FileNotFoundError:
            raise ImageError(f"image not found: {name}") from None
        except OSError as error:  # a folder, no permission, …
            raise _unreadable(name, error) from None
    with stream:
        _check_png(stream, name)
        stream.seek(0)
        try:
            with warnings.catch_warnings():
                # Sizes between our limit and PIL's warn; ours is the one that refuses.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(stream)
        except Image.DecompressionBombError as error:  # PIL's own limit, far above ours
            declared = re.search(r"\((\d+) pixels\)", str(error))
            shown = f"{int(declared[1]):,} pixels" if declared else "too many pixels"
            raise ImageError(f"{name} declares {shown}; {_LIMIT}") from None
        except UnidentifiedImageError:
            raise ImageError(f"cannot read {name} as an image: unknown image format") from None
        except Exception as error:  # as in _decoding: any failure is the file's
            raise _unreadable(name, error) from None
        with image:
            _check_size(name, *image.size)
            yield image


def _check_size(name: str, width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ImageError(f"{name} declares {width}×{height} pixels ({width * height:,}); {_LIMIT}")


def _check_png(stream: IO[bytes], name: str) -> None:
    """Refuse a PNG that declares too many pixels, or whose text chunks, decompressed, hold
    more than MAX_TEXT_BYTES, before PIL reads (and inflates) them. Reads only chunk headers
    and text chunks. Other formats pass: PIL bounds their metadata itself."""
    stream.seek(0)
    if stream.read(8) != _PNG_SIGNATURE:
        return
    total = 0
    while (header := stream.read(8)) and len(header) == 8:
        length, kind = struct.unpack(">I4s", header)
        if kind == b"IEND":
            break
        if kind == b"IHDR" and length >= 8:
            _check_size(name, *struct.unpack(">II", stream.read(8)))
            length -= 8
        if kind not in _TEXT_CHUNKS:
            stream.seek(length + 4, io.SEEK_CUR)  # data and CRC, unread
            continue
        total += length if length > MAX_TEXT_BYTES else _text_size(kind, stream.read(length))
        if total > MAX_TEXT_BYTES:
            raise ImageError(
                f"{name} carries more than {MAX_TEXT_BYTES:,} bytes of PNG text "
                f"({kind.decode()} chunks); Doorways reads at most that much"
            )
        stream.seek(4, io.SEEK_CUR)  # CRC


def _text_size(kind: bytes, data: bytes) -> int:
    """Bytes of text in one chunk once inflated (counted to just past MAX_TEXT_BYTES)."""
    _keyword, _, rest = data.partition(b"\0")
    if kind == b"tEXt":
        return len(rest)
    if kind == b"zTXt":
        return _inflated_size(rest[1:])
    compressed, rest = rest[:1] == b"\1", rest[2:]  # iTXt: flag, method, lang\0, key\0, text
    text = rest.split(b"\0", 2)[-1]
    return _inflated_size(text) if compressed else len(text)


def _inflated_size(data: bytes) -> int:
    try:
        return len(zlib.decompressobj().decompress(data, MAX_TEXT_BYTES + 1))
    except zlib.error:
        return 0  # PIL skips a damaged compressed chunk too


def _unreadable(name: str, error: BaseException) -> ImageError:
    reason = (error.strerror if isinstance(error, OSError) else None) or str(error)
    reason = reason.strip().rstrip(".")
    reason = reason.splitlines()[0] if reason else type(error).__name__
    return ImageError(f"cannot read {name} as an image: {reason}")
