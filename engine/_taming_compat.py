"""Make `taming` (taming-transformers-rom1504) importable under Lightning 2, and faster.

`taming/main.py`, which `taming.models.vqgan` imports, still does
`from pytorch_lightning.utilities.distributed import rank_zero_only`; that module is gone
in Lightning 2. We register a one-attribute stand-in before the first taming import.

taming's encoder and decoder spell swish as `x * torch.sigmoid(x)`: three kernels and two
saved tensors per call, in forward and backward. `F.silu` is the same function fused.
"""

from __future__ import annotations

import sys
import types

_SHIM = "pytorch_lightning.utilities.distributed"


def ensure_taming_importable() -> None:
    """Register the missing `pytorch_lightning.utilities.distributed` module (idempotent)."""
    if _SHIM in sys.modules:
        return
    try:  # a Lightning that still ships the module needs nothing
        __import__(_SHIM)
        return
    except ImportError:
        pass
    from pytorch_lightning.utilities.rank_zero import rank_zero_only

    shim = types.ModuleType(_SHIM)
    shim.rank_zero_only = rank_zero_only  # type: ignore[attr-defined]
    sys.modules[_SHIM] = shim


def use_fused_swish() -> None:
    """Point taming's `nonlinearity` (looked up at call time) at the fused F.silu."""
    import torch.nn.functional as F
    from taming.modules.diffusionmodules import model

    model.nonlinearity = F.silu
