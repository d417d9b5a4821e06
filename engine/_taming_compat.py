"""Import `taming` (taming-transformers-rom1504) without PyTorch Lightning, and faster.

`taming.models.vqgan` does `import pytorch_lightning as pl` for one thing, the base class
`pl.LightningModule`, and imports `instantiate_from_config` from `taming.main`, a training
script that imports Lightning's Trainer and callbacks (and, under Lightning 2, the module
`pytorch_lightning.utilities.distributed`, which is gone). Importing Lightning costs about
3 s per process; inference uses none of it. So while `taming.models.vqgan` is imported we
put two stand-ins in `sys.modules`:

- `pytorch_lightning`, whose `LightningModule` is a plain `torch.nn.Module` subclass
  (VQModel's layers, `state_dict` keys and forward pass are its own);
- `taming.main`, with only `instantiate_from_config`.

They are removed again (and whatever was there before put back) as soon as the import is
done: a later `import pytorch_lightning` — say, when unpickling an official checkpoint that
holds Lightning's ModelCheckpoint — gets the real package.

taming's encoder and decoder spell swish as `x * torch.sigmoid(x)`: three kernels and two
saved tensors per call, in forward and backward. `F.silu` is the same function fused.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from collections.abc import Mapping
from typing import Any

import torch

_STAND_INS = ("pytorch_lightning", "taming.main")
_lock = threading.Lock()  # one import at a time: the stand-ins are process-wide while it runs


def instantiate_from_config(config: Mapping[str, Any]) -> Any:
    """taming.main's: build `config["target"]` (a dotted class path) with `config["params"]`."""
    if "target" not in config:
        raise KeyError("Expected key `target` to instantiate.")
    module, name = config["target"].rsplit(".", 1)
    return getattr(importlib.import_module(module), name)(**config.get("params", {}))


class LightningModule(torch.nn.Module):
    """All that taming's VQModel needs of Lightning's class for inference: an nn.Module."""


def _stand_in_modules() -> dict[str, types.ModuleType]:
    lightning = types.ModuleType("pytorch_lightning", "Doorways' import-time stand-in")
    lightning.LightningModule = LightningModule  # type: ignore[attr-defined]
    main = types.ModuleType("taming.main", "Doorways' import-time stand-in")
    main.instantiate_from_config = instantiate_from_config  # type: ignore[attr-defined]
    return {"pytorch_lightning": lightning, "taming.main": main}


def ensure_taming_importable() -> None:
    """Import `taming.models.vqgan` with Lightning stand-ins, then remove them (idempotent)."""
    if "taming.models.vqgan" in sys.modules:
        return
    with _lock:
        if "taming.models.vqgan" in sys.modules:
            return
        saved = {name: sys.modules.get(name) for name in _STAND_INS}
        sys.modules.update(_stand_in_modules())
        try:
            importlib.import_module("taming.models.vqgan")
        finally:
            for name, module in saved.items():
                if module is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = module
            taming = sys.modules.get("taming")
            if taming is not None and saved["taming.main"] is None:
                # `import taming.main` bound the stand-in as an attribute of the package too.
                taming.__dict__.pop("main", None)


def use_fused_swish() -> None:
    """Point taming's `nonlinearity` (looked up at call time) at the fused F.silu."""
    import torch.nn.functional as F
    from taming.modules.diffusionmodules import model

    model.nonlinearity = F.silu
