"""openai-clip's model and tokenizer, without running `clip/clip.py`.

`import clip` runs clip/clip.py, which imports torchvision (for the preprocessing that
`clip.load` returns; our cutouts are normalised on the device instead) and pkg_resources:
about 2 s per process, paid by every worker start and every CLI run. The two modules we use,
clip/model.py and clip/simple_tokenizer.py, import neither, so they are loaded from the
installed package's folder under private names, and the short `tokenize` is written here.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch


def _module(file: str) -> ModuleType:
    """clip/<file>.py as the module `_doorways_clip_<file>`, loaded once."""
    name = f"_doorways_clip_{file}"
    if name in sys.modules:
        return sys.modules[name]
    package = importlib.util.find_spec("clip")  # finds the folder; runs no clip code
    if package is None or not package.submodule_search_locations:
        raise ImportError("openai-clip is not installed: pip install openai-clip")
    path = Path(package.submodule_search_locations[0]) / f"{file}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]  # not half a module for the next caller
        raise
    return module


def model_module() -> ModuleType:
    """clip/model.py: CLIP, build_model, convert_weights."""
    return _module("model")


@functools.cache
def _tokenizer() -> Any:
    return _module("simple_tokenizer").SimpleTokenizer()


def tokenize(texts: Sequence[str], context_length: int) -> torch.Tensor:
    """(len(texts), context_length) int token ids, as clip.tokenize(..., truncate=True)."""
    tokenizer = _tokenizer()
    start, end = tokenizer.encoder["<|startoftext|>"], tokenizer.encoder["<|endoftext|>"]
    result = torch.zeros(len(texts), context_length, dtype=torch.int)
    for i, text in enumerate(texts):
        tokens = [start, *tokenizer.encode(text), end][:context_length]
        tokens[-1] = end  # a truncated prompt still ends like one
        result[i, : len(tokens)] = torch.tensor(tokens)
    return result


def read_model(path: Path) -> torch.nn.Module:
    """A CLIP model from an OpenAI TorchScript archive, built in eager mode (clip.load's
    jit=False path); RuntimeError if the file is not such an archive."""
    archive = torch.jit.load(str(path), map_location="cpu")
    return model_module().build_model(archive.state_dict()).float()
