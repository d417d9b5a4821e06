"""Hostile image files, made by the tests: a decompression bomb's header, a truncated PNG, PNGs
with huge text chunks, animations. Each maker returns the file's bytes."""

from __future__ import annotations

import io
import random
import struct
import zlib

from PIL import Image, PngImagePlugin


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares width × height RGB pixels, followed by one row of data:
    a decoder that trusts the header allocates the whole picture."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = zlib.compress(b"\0" * (1 + 3 * min(width, 64)))
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", row) + _chunk(b"IEND", b"")
    )


def plain_png(
    width: int = 64, height: int = 48, info: PngImagePlugin.PngInfo | None = None
) -> bytes:
    """A valid PNG of noise (noise, so the compressed data is long enough to cut)."""
    image = Image.frombytes("RGB", (width, height), random.Random(0).randbytes(width * height * 3))
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def truncated_png() -> bytes:
    """A valid PNG cut off in the middle of its pixel data."""
    data = plain_png(128, 128)
    return data[: len(data) // 2]


def png_with_text(kind: str, size: int) -> bytes:
    """A valid 16×16 PNG with one text chunk of `size` bytes: `tEXt` stored as is, `zTXt`
    compressed (a few KB in the file that inflate to `size`)."""
    info = PngImagePlugin.PngInfo()
    if kind == "tEXt":
        info.add_text("comment", "x" * size)
    else:
        info.add_text("comment", "x" * size, zip=True)
    return plain_png(16, 16, info)


def animated(format: str, frames: int = 3) -> bytes:
    """An animated GIF or PNG (APNG) whose frames are red, green, blue, …"""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    images = [Image.new("RGB", (32, 32), colours[i % 3]) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, format=format, save_all=True, append_images=images[1:], duration=100)
    return out.getvalue()


def gif_declaring(width: int, height: int) -> bytes:
    """A one-pixel GIF whose logical screen declares width × height: PIL's GIF reader takes
    the size from the screen, so this is the non-PNG decompression bomb."""
    out = io.BytesIO()
    Image.new("P", (1, 1)).save(out, format="GIF")
    data = bytearray(out.getvalue())
    data[6:10] = struct.pack("<HH", width, height)
    return bytes(data)
