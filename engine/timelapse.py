"""A timelapse of the painting forming: frames along the way, written as an animated GIF.

GIF, because Discord (and every browser and chat app) plays it inline without a click. About
MAX_FRAMES evenly spaced frames, the last one held; when the file would pass the size limit
(Discord's upload limit), the frames are shrunk, then thinned, until it fits.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

from PIL import Image

if TYPE_CHECKING:
    from torch import Tensor

MAX_FRAMES = 60
FRAME_MS = 80
HOLD_LAST_MS = 1500
MAX_SIDE = 512  # frames are kept at most this wide or tall
DEFAULT_LIMIT = 8 * 2**20  # under Discord's smallest upload limit (10 MiB)


def frame_every(iterations: int) -> int:
    """Iterations between two frames, so that a run gives about MAX_FRAMES of them."""
    return max(1, math.ceil(iterations / MAX_FRAMES))


def is_frame(iteration: int, total: int) -> bool:
    """The first iteration (the random start) and every frame_every-th before the last; the
    finished picture is the last frame."""
    return iteration < total and (iteration == 1 or iteration % frame_every(total) == 0)


class Timelapse:
    """Collects frames as small 8-bit images, so a long run holds a few MB at most: each
    Progress.frame of a run, then the Finished image."""

    def __init__(self) -> None:
        self.frames: list[Image.Image] = []

    def add(self, image: Tensor) -> None:
        """(3, H, W) in [0, 1], on any device."""
        from engine.outputs import to_pil

        frame = to_pil(image)
        frame.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
        self.frames.append(frame)

    def finish(self, final: Tensor, limit_bytes: int = DEFAULT_LIMIT) -> bytes:
        """The animation with the finished picture as its last, held frame (see gif)."""
        self.add(final)
        return self.gif(limit_bytes)

    def gif(self, limit_bytes: int = DEFAULT_LIMIT) -> bytes:
        """The animation, at most limit_bytes: smaller frames first, then fewer of them."""
        if not self.frames:
            raise ValueError("a timelapse needs at least one frame")
        frames, scale = self.frames, 1.0
        while True:
            data = _encode(frames, scale)
            if len(data) <= limit_bytes:
                return data
            if scale > 0.3:
                scale *= 0.75
            elif len(frames) > 2:
                frames = [*frames[:-1:2], frames[-1]]  # every other one, keeping the last
            else:
                raise ValueError(f"no timelapse fits in {limit_bytes} bytes")


def _encode(frames: list[Image.Image], scale: float) -> bytes:
    width, height = frames[0].size
    size = (max(16, round(width * scale)), max(16, round(height * scale)))
    resized = [f.resize(size, Image.Resampling.LANCZOS) if scale < 1 else f for f in frames]
    durations = [FRAME_MS] * (len(resized) - 1) + [HOLD_LAST_MS]
    buffer = io.BytesIO()
    resized[0].save(
        buffer, format="GIF", save_all=True, append_images=resized[1:], duration=durations,
        loop=0, disposal=1,
    )  # fmt: skip
    return buffer.getvalue()
