"""Outputs: PNGs that carry their recipe, and names that never overwrite.

torch is imported where tensors are converted, so reading a PNG's recipe (the bot does) does
not load it.
"""

import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, PngImagePlugin

from engine import __version__
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
    string beside it; returns where the PNG went."""
    path = claim_path(path.with_suffix(".png"))
    path.write_bytes(png)
    path.with_suffix(".txt").write_text(call_string + "\n", encoding="utf-8")
    return path


def save_preview(image: "Tensor", path: Path) -> None:
    """Overwrite one preview file atomically (readers never see half a PNG)."""
    partial = path.with_name(path.name + ".part")
    to_pil(image).save(partial, format="PNG")
    os.replace(partial, path)


def read_request(path: Path) -> Request:
    """The request recorded in a Doorways PNG (its JSON, or failing that its call string)."""
    try:
        with Image.open(path) as image:
            text = dict(getattr(image, "text", {}))
    except FileNotFoundError:
        raise ValueError(f"no such file: {path}") from None
    except OSError as error:
        raise ValueError(f"cannot read {path} as an image: {error}") from None
    return _request_from_text(text, str(path))


def read_request_bytes(data: bytes, name: str = "the image") -> Request:
    """read_request for a PNG in memory (an upload, a Discord attachment); errors say `name`."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            text = dict(getattr(image, "text", {}))
    except OSError as error:
        raise ValueError(f"cannot read {name} as an image: {error}") from None
    return _request_from_text(text, name)


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
