"""The painter: what runs on a device. It keeps the last-used VQGAN and CLIP resident and
paints one job at a time as a generator of plain items — Started, Progress…, then Painted
(the PNG in memory), Failed or Cancelled — with Models whenever the resident models change.

The painter knows nothing of how it is reached: the local worker process (engine.worker.
process) sends its items down a pipe, the Ray actor (engine.worker.cluster) streams them to
the bot. torch and the model code are imported inside, so importing this module is cheap.
"""

from __future__ import annotations

import dataclasses
import gc
import io
import logging
import math
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.clips import model_names
from engine.request import Request
from engine.timelapse import Timelapse
from engine.worker.jobs import Cancelled, Failed, Job, Painted, Progress, Started

if TYPE_CHECKING:
    import torch

    from engine.models import CLIP, VQGAN

log = logging.getLogger("doorways.worker")

OOM_AREA_FACTOR = 0.7  # a job that ran out of memory is told to try 70% of its area


@dataclass(frozen=True)
class Models:
    """The models now resident on the painter's device."""

    names: tuple[str, ...]  # "vqgan:NAME", "clip:NAME"


Item = Started | Progress | Painted | Failed | Cancelled | Models


class DeviceBroken(Exception):
    """A CUDA error left the device unusable: whoever runs the painter ends it (a fresh
    process gets a fresh CUDA context)."""


# --- sizes and errors ---------------------------------------------------------------------


def suggest_size(width: int, height: int, factor: float = OOM_AREA_FACTOR) -> tuple[int, int]:
    """A size with about `factor` of the area and the same aspect, in multiples of 16 px."""
    scale = math.sqrt(factor)
    return max(16, int(width * scale) // 16 * 16), max(16, int(height * scale) // 16 * 16)


def is_out_of_memory(error: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError, or a RuntimeError that says it ran out of memory."""
    if type(error).__name__ == "OutOfMemoryError":  # torch.cuda / torch, without importing it
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and (
        "out of memory" in text or "not enough memory" in text
    )


def is_device_failure(error: BaseException) -> bool:
    """A CUDA error other than running out of memory: the context is unusable from now on."""
    if is_out_of_memory(error):
        return False
    if type(error).__name__ == "AcceleratorError":  # torch >= 2.8 raises it for CUDA errors
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(
        mark in text
        for mark in ("cuda error", "cublas_status", "cudnn_status", "device-side assert")
    )


def oom_message(request: Request, device: str) -> str:
    width, height = request.size
    small_w, small_h = suggest_size(width, height)
    if (small_w, small_h) == (width, height):
        return f"too large for this GPU ({device}): try fewer cutouts than {request.cutn}"
    return (
        f"{width}×{height} is too large for this GPU ({device}): try at most "
        f"{small_w}×{small_h} (or fewer cutouts than {request.cutn})"
    )


# --- models -------------------------------------------------------------------------------


class ModelCache:
    """The last-used VQGAN and CLIP list, keyed by their names; another name replaces one.

    A CLIP list (`ViT-B/32,ViT-B/16:0.5`) keeps all its models resident; changing the list
    keeps the models the new one shares with the old and loads only the others.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.vqgan: tuple[str, VQGAN] | None = None
        self.clips: tuple[tuple[str, ...], tuple[CLIP, ...]] | None = None

    def names(self) -> tuple[str, ...]:
        """ "vqgan:NAME", then "clip:NAME" for each CLIP, of the models now resident."""
        vqgan = () if self.vqgan is None else (f"vqgan:{self.vqgan[0]}",)
        return (*vqgan, *(f"clip:{name}" for name in (self.clips[0] if self.clips else ())))

    def resident(self, vqgan_name: str, clip_list: str) -> bool:
        """Whether all the models are loaded already (a job with them starts at once)."""
        vqgan_ready = self.vqgan is not None and self.vqgan[0] == vqgan_name
        return vqgan_ready and self.clips is not None and self.clips[0] == model_names(clip_list)

    def get(self, vqgan_name: str, clip_list: str) -> tuple[VQGAN, tuple[CLIP, ...]]:
        """The VQGAN and the list's CLIPs, loading (after freeing what they replace) what is
        not resident."""
        from engine import models, registry

        clip_names = model_names(clip_list)
        for name in (vqgan_name, *clip_names):  # fail before evicting what is resident
            if registry.is_registered(name):
                registry.weights_path(name)
        if self.vqgan is None or self.vqgan[0] != vqgan_name:
            self.vqgan = None
            free_memory(self.device)
            log.info("loading VQGAN %s on %s", vqgan_name, self.device)
            self.vqgan = (vqgan_name, models.load_vqgan(vqgan_name, self.device))
        if self.clips is None or self.clips[0] != clip_names:
            loaded = dict(zip(*self.clips, strict=True)) if self.clips else {}
            self.clips = None
            kept = {name: loaded[name] for name in clip_names if name in loaded}
            loaded.clear()  # the models the new list does not name go now, before loading
            free_memory(self.device)
            for name in clip_names:
                if name not in kept:
                    log.info("loading CLIP %s on %s", name, self.device)
                    kept[name] = models.load_clip(name, self.device)
            self.clips = (clip_names, tuple(kept[name] for name in clip_names))
        return self.vqgan[1], self.clips[1]

    def clear(self) -> None:
        self.vqgan = self.clips = None
        free_memory(self.device)


def describe_device(device: torch.device) -> tuple[str, int | None]:
    """("cuda:0 (NVIDIA H200, 140 GiB)", its memory in bytes), or ("cpu", None)."""
    import torch

    if device.type != "cuda":
        return str(device), None
    props = torch.cuda.get_device_properties(device)
    return f"{device} ({props.name}, {props.total_memory / 2**30:.0f} GiB)", props.total_memory


def free_memory(device: torch.device) -> None:
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def input_paths(request: Request) -> list[str]:
    """The image files a request reads: its init image and image prompts."""
    paths = [prompt.text for prompt in request.image_prompts]
    return [request.init_image, *paths] if request.init_image else paths


def with_paths(request: Request, paths: Mapping[str, str]) -> Request:
    """The request with its image files renamed by `paths` (others kept)."""
    if not paths:
        return request
    return request.replace(
        init_image=request.init_image and paths.get(request.init_image, request.init_image),
        image_prompts=tuple(
            dataclasses.replace(p, text=paths.get(p.text, p.text)) for p in request.image_prompts
        ),
    )


def _timelapse_gif(frames: Timelapse | None, final: torch.Tensor, job_id: str) -> bytes | None:
    """The job's timelapse with its finished picture last, or None (not asked for, or it
    would not fit the size limit: the picture matters more)."""
    if frames is None:
        return None
    try:
        return frames.finish(final)
    except ValueError as error:
        log.warning("job %s: no timelapse: %s", job_id, error)
        return None


def _preview_png(image: torch.Tensor) -> bytes:
    from engine.outputs import to_pil

    buffer = io.BytesIO()
    to_pil(image).save(buffer, format="PNG")
    return buffer.getvalue()


# --- painting -----------------------------------------------------------------------------


class Painter:
    """Paints jobs on one device, one at a time, keeping the models resident between them.

    Parameters
    ----------
    device:
        The torch device every job runs on.
    progress_interval:
        The most seconds between Progress items (each reads the losses off the device).
    """

    def __init__(self, device: torch.device, progress_interval: float = 1.0) -> None:
        self.device = device
        self.progress_interval = progress_interval
        self.models = ModelCache(device)

    def preload(self, vqgan: str, clip: str) -> Models:
        """Load the VQGAN and the CLIP list now, so the first job does not wait for them."""
        try:
            self.models.get(vqgan, clip)
        except Exception as error:  # a missing model fails its jobs later, with the fix
            log.warning("could not preload %s + %s: %s", vqgan, clip, error)
        return Models(self.models.names())

    def paint(
        self,
        job: Job,
        cancelled: Callable[[], bool],
        inputs: Mapping[str, str] | None = None,
    ) -> Iterator[Item]:
        """Paint one job; always ends with exactly one of Painted, Failed, Cancelled.

        `cancelled()` is asked between iterations. After a CUDA error the Failed item
        ("crash") is followed by DeviceBroken: the device is unusable until a fresh process.
        `inputs` maps the request's image paths to copies on this machine (a Ray actor on
        another machine); the picture's recipe keeps the paths as the request gave them.
        """
        if cancelled():
            yield Cancelled(job.job_id)
            return
        yield Started(job.job_id, time.time(), self._loads_models(job))
        try:
            outcome = yield from self._paint(job, cancelled, inputs or {})
        except Exception as error:
            log.exception("job %s failed", job.job_id)
            if is_device_failure(error):
                yield Failed(
                    job.job_id,
                    "crash",
                    f"the GPU failed ({type(error).__name__}: {error}); the worker restarts, "
                    "and the job may work if tried again",
                )
                raise DeviceBroken from error
            outcome = Failed(
                job.job_id, "internal", f"internal error: {type(error).__name__}: {error}"
            )
        if isinstance(outcome, Failed) and outcome.kind == "out_of_memory":
            free_memory(self.device)
        yield outcome
        log.info("job %s: %s", job.job_id, type(outcome).__name__.lower())

    def _loads_models(self, job: Job) -> bool:
        try:
            request = Request.from_json(job.request_json)
        except (ValueError, TypeError):
            return False  # it fails at once, loading nothing
        return not self.models.resident(request.vqgan, request.clip)

    def _paint(
        self, job: Job, cancelled: Callable[[], bool], inputs: Mapping[str, str]
    ) -> Generator[Item, None, Painted | Failed | Cancelled]:
        from engine import registry
        from engine.images import ImageError
        from engine.loop import Finished, generate
        from engine.outputs import png_bytes
        from engine.registry import ModelError, ModelMissing

        picked = time.perf_counter()
        try:
            request = with_paths(Request.from_json(job.request_json), inputs)
            for note in request.check_inputs():
                log.warning("job %s: %s", job.job_id, note)
        except (ValueError, TypeError) as error:
            return Failed(job.job_id, "bad_request", str(error))

        try:
            vqgan, clips = self.models.get(request.vqgan, request.clip)
        except ModelMissing as error:
            return Failed(job.job_id, "model_missing", str(error))
        except ModelError as error:  # unreadable weights: the user's file, or ours
            names = (request.vqgan, *model_names(request.clip))
            yours = any(n not in (*registry.vqgan_names(), *registry.clip_names()) for n in names)
            return Failed(job.job_id, "bad_request" if yours else "internal", str(error))
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            self.models.clear()
            return Failed(
                job.job_id,
                "out_of_memory",
                f"the models {request.vqgan} + {request.clip} do not fit in this GPU's memory "
                f"({self.device})",
            )
        finally:
            yield Models(self.models.names())
        loaded = time.perf_counter()
        if cancelled():
            return Cancelled(job.job_id)

        first_step_s = 0.0
        first_done = last_report = -math.inf
        frames = Timelapse() if request.timelapse is not None else None
        steps = generate(request, vqgan, clips)
        try:
            for event in steps:
                if isinstance(event, Finished):
                    assert event.request.seed is not None
                    back = {v: k for k, v in inputs.items()}
                    # The picture, or a batch's grid and then each of its pictures.
                    made = [(event.image, event.request)]
                    if len(event.images) > 1:
                        made += zip(event.images, event.requests, strict=True)
                    encoded = [
                        (png_bytes(image, with_paths(own, back), str(self.device)),
                         with_paths(own, back).recipe().to_call_string())
                        for image, own in made
                    ]  # fmt: skip
                    (png, call), *pictures = encoded
                    return Painted(
                        job.job_id,
                        png,
                        call,
                        event.request.seed,
                        pictures=tuple(pictures),
                        load_s=loaded - picked,
                        first_step_s=first_step_s,
                        total_s=time.perf_counter() - picked,
                        timelapse_gif=_timelapse_gif(frames, event.image, job.job_id),
                    )
                if frames is not None and event.frame is not None:
                    frames.add(event.frame)
                now = time.perf_counter()
                due = (
                    event.image is not None
                    or event.iteration in (1, event.total)
                    or now - last_report >= self.progress_interval
                )
                if due:
                    losses = event.loss_values()  # waits for the device
                    now = time.perf_counter()
                    if event.iteration == 1:
                        first_step_s, first_done = now - loaded, now
                    if event.iteration > 1 and now > first_done:
                        rate = (event.iteration - 1) / (now - first_done)
                    else:
                        rate = 1 / max(first_step_s, 1e-6)
                    yield Progress(
                        job.job_id,
                        event.iteration,
                        event.total,
                        losses,
                        it_per_s=rate,
                        eta_s=(event.total - event.iteration) / rate,
                        preview_png=None if event.image is None else _preview_png(event.image),
                    )
                    last_report = now
                if cancelled():
                    return Cancelled(job.job_id)
        except ImageError as error:  # an input image changed since check_inputs
            return Failed(job.job_id, "bad_request", str(error))
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            return Failed(job.job_id, "out_of_memory", oom_message(request, str(self.device)))
        finally:
            steps.close()  # closing the loop's generator cancels it
        raise RuntimeError("the loop ended without a result")
