"""Outputs: PNGs that carry their recipe, and names that never overwrite.

torch is imported where tensors are converted, so reading a PNG's recipe (the bot does) does
not load it.
"""

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, PngImagePlugin

from engine import __version__
from engine.images import read_text
from engine.request import Request

if TYPE_CHECKING:
    from torch import Tensor


def claim_path(path: Path) -> Path:
    """Reserve `path`, or the first free `stem_1`, `stem_2`, … beside it; never overwrite.

    The name is claimed by creating the file exclusively, so two writers never collide.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate, number = path, 0
    while True:
        try:
            os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return candidate
        except FileExistsError:
            number += 1
            candidate = path.with_name(f"{path.stem}_{number}{path.suffix}")


def to_pil(image: "Tensor") -> Image.Image:
    """(3, H, W) in [0, 1] → an 8-bit RGB image."""
    import torch

    array = image.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0)
    return Image.fromarray(array.cpu().numpy(), "RGB")


def png_metadata(request: Request, device: str) -> PngImagePlugin.PngInfo:
    """Text chunks: `parameters` (the call string) and `doorways` (request JSON + provenance)."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt("parameters", request.to_call_string())
    record = {"request": request.to_dict(), "engine_version": __version__, "device": device}
    info.add_itxt("doorways", json.dumps(record, ensure_ascii=False, sort_keys=True))
    return info


def save_png(image: "Tensor", request: Request, path: Path, device: str) -> Path:
    """Write the PNG and a sidecar `.txt` call string, both with the request's recipe."""
    recipe = request.recipe()
    return write_png(png_bytes(image, recipe, device), recipe.to_call_string(), path)


def png_bytes(image: "Tensor", request: Request, device: str) -> bytes:
    """The PNG, with the request's recipe in its metadata, in memory (it may cross machines)."""
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format="PNG", pnginfo=png_metadata(request.recipe(), device))
    return buffer.getvalue()


def write_png(png: bytes, call_string: str, path: Path) -> Path:
    """Write an encoded PNG at `path` (or the first free `stem_N.png`) and its `.txt` call
    string beside it; returns where the PNG went. OSError if either cannot be written; then
    neither is left behind."""
    path = claim_path(path.with_suffix(".png"))
    try:
        path.write_bytes(png)
        path.with_suffix(".txt").write_text(call_string + "\n", encoding="utf-8")
    except BaseException:
        for written in (path, path.with_suffix(".txt")):
            with contextlib.suppress(OSError):
                written.unlink()
        raise
    return path


def picture_path(path: Path, index: int | str) -> Path:
    """Where picture `index` (1-based, or `grid`) of a batch painted for `path` goes:
    beside it, `NAME-2.png`."""
    return path.with_name(f"{path.with_suffix('').name}-{index}.png")


def fallback_folders() -> list[Path]:
    """Where a picture goes when its own path cannot take it, in order: `outputs` beside the
    models folder (data/outputs in a checkout), then the system's temporary folder."""
    from engine.registry import model_dir

    return [model_dir().parent / "outputs", Path(tempfile.gettempdir()) / "doorways"]


def write_png_safely(png: bytes, call_string: str, path: Path) -> tuple[Path, str | None]:
    """write_png at `path`, or, if that fails (disk full, folder removed or read-only), in
    the first of fallback_folders() that takes it. Returns where it went and, if that is not
    `path`, a note saying why and where. OSError, listing each place tried, if none did."""
    tried = []
    for folder in [None, *fallback_folders()]:
        target = path if folder is None else folder / path.with_suffix(".png").name
        try:
            saved = write_png(png, call_string, target)
        except OSError as error:
            tried.append(f"{target.parent}: {error.strerror or error}")
            continue
        if folder is None:
            return saved, None
        return saved, f"could not save to {path} ({tried[0]}); saved to {saved} instead"
    raise OSError(f"could not save the picture anywhere ({'; '.join(tried)})")


def check_writable(path: Path) -> None:
    """ValueError unless a picture can be written at `path`: its folder is created if need
    be and a file made there (and removed), so a bad -o fails before any painting."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doorways-check-"):
            pass
    except OSError as error:
        raise ValueError(f"cannot write the picture to {path}: {error.strerror or error}") from None


def save_preview(image: "Tensor", path: Path) -> None:
    """Overwrite one preview file atomically (readers never see half a PNG)."""
    partial = path.with_name(path.name + ".part")
    to_pil(image).save(partial, format="PNG")
    os.replace(partial, path)


def read_request(path: Path) -> Request:
    """The request recorded in a Doorways PNG (its JSON, or failing that its call string).
    ValueError (engine.images.ImageError for the file itself) if there is none."""
    return _request_from_text(read_text(path), str(path))


def read_request_bytes(data: bytes, name: str = "the image") -> Request:
    """read_request for a PNG in memory (an upload, a Discord attachment); errors say `name`."""
    return _request_from_text(read_text(data, name), name)


def _request_from_text(text: dict[str, str], name: str) -> Request:
    if "doorways" in text:
        try:
            record = json.loads(text["doorways"])
            return Request.from_dict(record["request"])
        except (KeyError, TypeError, json.JSONDecodeError) as error:
            raise ValueError(f"{name}: damaged Doorways metadata ({error})") from None
    if text.get("parameters", "").startswith("doorways generate"):
        return Request.from_call_string(text["parameters"])
    raise ValueError(f"{name} carries no Doorways parameters (not made by Doorways?)")
