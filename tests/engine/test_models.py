"""Tests for engine.models: registry, downloads, loaders, tiny and random models."""

from __future__ import annotations

import hashlib
import pickle
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import torch

from engine import _clip_compat, models, registry
from engine.clips import parse_clips
from engine.models import CLIP, VQGAN, load_clip, load_vqgan
from engine.registry import ModelError, ModelMissing
from engine.request import DEFAULT_CLIP, DEFAULT_VQGAN

CPU = torch.device("cpu")
pytestmark = pytest.mark.filterwarnings(
    "ignore:pkg_resources is deprecated:UserWarning",  # import clip
    "ignore:`torch.jit.load` is deprecated:FutureWarning",
)


@pytest.fixture
def empty_model_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty DOORWAYS_MODELS for one test."""
    monkeypatch.setenv("DOORWAYS_MODELS", str(tmp_path / "models"))
    return tmp_path / "models"


# --- registry -----------------------------------------------------------------------------


def test_registry_entries_are_well_formed() -> None:
    """Every entry has kind, files with url/name/size/sha256, and its architecture."""
    import clip

    for name, entry in registry.registry().items():
        assert entry["kind"] in ("vqgan", "clip"), name
        assert entry["files"], name
        for f in entry["files"]:
            assert f["url"].startswith(("http://", "https://")), name
            assert all(u.startswith("https://") for u in f.get("mirrors", [])), name
            assert registry.urls(f)[0] == f["url"] and len(set(registry.urls(f))) == len(
                registry.urls(f)
            ), name
            assert f["name"] and "/" not in f["name"], name
            assert f["size_bytes"] > 0, name
            assert f["sha256"] is None or re.fullmatch(r"[0-9a-f]{64}", f["sha256"]), name
        assert entry.get("unavailable") is None or entry["unavailable"].strip(), name
        if entry["kind"] == "vqgan":
            assert entry["target"] in models.VQGAN_CLASSES, name
            assert {"embed_dim", "n_embed", "ddconfig"} <= entry["params"].keys(), name
            assert entry["files"][0]["name"].endswith(".ckpt"), name
        else:
            (f,) = entry["files"]
            assert f["url"] == clip.clip._MODELS[name]
            assert f["sha256"] == f["url"].split("/")[-2]
            params = entry["params"]
            # clip.model.build_model infers heads as width // 64; the registry must agree.
            assert params["transformer_heads"] == params["transformer_width"] // 64, name


def test_registry_names_and_defaults() -> None:
    """The registry has the four VQGANs, every openai-clip model, the defaults and tiny."""
    import clip

    assert registry.vqgan_names() == [
        "vqgan_imagenet_f16_16384",
        "vqgan_imagenet_f16_1024",
        "wikiart_16384",
        "vqgan_gumbel_f8_8192",
        "tiny",
    ]
    assert registry.clip_names() == [*clip.available_models(), "tiny"]
    assert DEFAULT_VQGAN in registry.vqgan_names() and DEFAULT_CLIP in registry.clip_names()
    assert (
        registry.registry()[DEFAULT_VQGAN]["default"]
        and registry.registry()[DEFAULT_CLIP]["default"]
    )


def test_registry_returns_a_copy() -> None:
    """Changing what registry() returns does not change the registry."""
    registry.registry()[DEFAULT_VQGAN]["kind"] = "oops"
    assert registry.registry()[DEFAULT_VQGAN]["kind"] == "vqgan"


def test_is_known_model(tmp_path: Path) -> None:
    """Registry names of the kind, tiny, random:NAME and existing files are known."""
    weights = tmp_path / "mine.ckpt"
    weights.touch()
    assert registry.is_known_model("vqgan", DEFAULT_VQGAN)
    assert registry.is_known_model("vqgan", "tiny")
    assert registry.is_known_model("vqgan", "random:vqgan_gumbel_f8_8192")
    assert registry.is_known_model("vqgan", str(weights))
    assert registry.is_known_model("clip", "random:ViT-B/32")
    assert not registry.is_known_model("vqgan", DEFAULT_CLIP)
    assert not registry.is_known_model("clip", "random:" + DEFAULT_VQGAN)
    assert not registry.is_known_model("clip", "random:tiny")
    assert not registry.is_known_model("clip", str(tmp_path / "absent.pt"))
    with pytest.raises(ValueError, match="unknown model kind"):
        registry.is_known_model("gan", "tiny")


def test_vqgan_factor_without_loading(tiny_vqgan: VQGAN) -> None:
    """The bot's size arithmetic reads the factor from the registry, as the model has it."""
    assert registry.vqgan_factor("tiny") == tiny_vqgan.factor == 16
    assert registry.vqgan_factor(DEFAULT_VQGAN) == 16
    assert registry.vqgan_factor("vqgan_gumbel_f8_8192") == 8
    assert registry.vqgan_factor("random:vqgan_gumbel_f8_8192") == 8
    assert registry.vqgan_factor("/somewhere/mine.ckpt") == 16  # unknown file: the usual f16
    assert registry.token_grid((181, 90), 16) == (11, 6) and registry.token_grid((5, 5), 8) == (
        1,
        1,
    )


def test_model_dir_default_and_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """model_dir() is $DOORWAYS_MODELS when set, else data/models in the repository."""
    monkeypatch.setenv("DOORWAYS_MODELS", str(tmp_path))
    assert registry.model_dir() == tmp_path.resolve()
    monkeypatch.delenv("DOORWAYS_MODELS")
    assert registry.model_dir() == Path(models.__file__).resolve().parents[1] / "data" / "models"


def test_model_dir_of_an_installed_copy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Installed away from a checkout (engine/ in site-packages), models go to the user cache."""
    monkeypatch.delenv("DOORWAYS_MODELS")
    monkeypatch.setattr(registry, "REPO_ROOT", tmp_path / "site-packages")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert registry.model_dir() == tmp_path.resolve() / "cache" / "doorways" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert registry.model_dir() == tmp_path / "home" / ".cache" / "doorways" / "models"


def test_list_models_and_model_paths(empty_model_dir: Path) -> None:
    """list_models() has a row per entry and notices a downloaded file."""
    rows = {row["name"]: row for row in registry.list_models()}
    assert rows.keys() == registry.registry().keys()
    assert not any(row["downloaded"] for row in rows.values())
    assert registry.model_paths("ViT-B/32") == [empty_model_dir / "ViT-B-32.pt"]
    assert registry.model_paths(DEFAULT_VQGAN) == [
        empty_model_dir / "vqgan_imagenet_f16_16384.ckpt",
        empty_model_dir / "vqgan_imagenet_f16_16384.yaml",
    ]
    empty_model_dir.mkdir()
    (empty_model_dir / "ViT-B-32.pt").touch()
    row = next(r for r in registry.list_models() if r["name"] == "ViT-B/32")
    assert row["downloaded"] and row["kind"] == "clip" and row["size_bytes"] > 300e6
    assert row["path"] == empty_model_dir / "ViT-B-32.pt"
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        registry.model_paths("nope")


# --- tiny models --------------------------------------------------------------------------


def test_tiny_models_are_real_files_read_back_exactly(tiny_vqgan: VQGAN, tiny_clip: CLIP) -> None:
    """tiny is saved as a Lightning checkpoint + YAML and a TorchScript archive, and loaded."""
    tiny = registry.model_dir() / "tiny"
    ckpt = torch.load(tiny / "vqgan_tiny.ckpt", map_location="cpu", weights_only=True)
    assert "lossconfig" in (tiny / "vqgan_tiny.yaml").read_text()
    for key, value in tiny_vqgan.model.state_dict().items():
        assert torch.equal(value, ckpt["state_dict"][key]), key
    archive = torch.jit.load(tiny / "clip_tiny.pt", map_location="cpu")
    for key, value in tiny_clip.model.state_dict().items():
        assert torch.equal(value, archive.state_dict()[key]), key


def test_tiny_build_is_deterministic(
    tiny_vqgan: VQGAN, tiny_clip: CLIP, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building the tiny models again, elsewhere, gives the same files and weights."""
    session = registry.model_dir() / "tiny"
    monkeypatch.setenv("DOORWAYS_MODELS", str(tmp_path))
    again = models.ensure_tiny_vqgan().parent
    models.ensure_tiny_clip()
    assert {p.name for p in again.iterdir()} == {
        "vqgan_tiny.ckpt",
        "vqgan_tiny.yaml",
        "clip_tiny.pt",
    }
    for name in ("vqgan_tiny.ckpt", "vqgan_tiny.yaml"):
        assert (again / name).read_bytes() == (session / name).read_bytes(), name
    # A second trace in one process gets mangled class names inside the archive (a fresh
    # process writes identical bytes), so compare the archives' weights.
    first = torch.jit.load(session / "clip_tiny.pt").state_dict()
    second = torch.jit.load(again / "clip_tiny.pt").state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_tiny_files_are_reused(tiny_vqgan: VQGAN) -> None:
    """A second load of tiny reads the existing files instead of rewriting them."""
    ckpt = registry.model_dir() / "tiny" / "vqgan_tiny.ckpt"
    before = ckpt.stat().st_mtime_ns
    assert models.ensure_tiny_vqgan() == ckpt
    assert ckpt.stat().st_mtime_ns == before


def test_tiny_vqgan_encode_decode_shapes(tiny_vqgan: VQGAN) -> None:
    """64x64 encodes to a (1, 16, 4, 4) latent of codebook vectors and decodes to 64x64."""
    assert tiny_vqgan.codebook.shape == (256, 16)
    assert tiny_vqgan.factor == 16
    assert not tiny_vqgan.model.training
    assert not any(p.requires_grad for p in tiny_vqgan.model.parameters())
    z = tiny_vqgan.encode(torch.rand(1, 3, 64, 64))
    assert z.shape == (1, 16, 4, 4)
    vectors = z.permute(0, 2, 3, 1).reshape(-1, 16)
    assert torch.cdist(vectors, tiny_vqgan.codebook).min(dim=1).values.max() < 1e-5
    z = z.clone().requires_grad_(True)
    image = tiny_vqgan.decode(z)
    assert image.shape == (1, 3, 64, 64) and torch.isfinite(image).all()
    image.mean().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_tiny_clip_encodings_are_unit_norm(tiny_clip: CLIP) -> None:
    """Image and text embeddings are float32, L2-normalised, (B, 64) and (P, 64)."""
    assert tiny_clip.input_size == 224
    images = tiny_clip.encode_image(torch.rand(2, 3, 224, 224))
    texts = tiny_clip.encode_text(["heaven", "hell", "a door " * 100])
    assert images.shape == (2, 64) and texts.shape == (3, 64)
    assert images.dtype == texts.dtype == torch.float32
    torch.testing.assert_close(images.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(texts.norm(dim=-1), torch.ones(3))
    with pytest.raises(ValueError, match="224x224"):
        tiny_clip.encode_image(torch.rand(1, 3, 64, 64))


def test_a_clip_list_loads_each_model_at_its_own_input_size(
    tiny_clip: CLIP, small_clip_path: Path
) -> None:
    """load_clips reads every model of a list, in order: the tiny CLIP and a second tiny one
    saved at input size 128, read back from its file by path."""
    specs = parse_clips(f"tiny,{small_clip_path}:0.5")
    tiny, small = models.load_clips(specs, torch.device("cpu"))
    assert (tiny.name, tiny.input_size) == ("tiny", 224)
    assert (small.name, small.input_size) == (str(small_clip_path), 128)
    assert small.encode_image(torch.rand(2, 3, 128, 128)).shape == (2, 64)
    image = torch.rand(1, 3, 224, 224)
    torch.testing.assert_close(tiny.encode_image(image), tiny_clip.encode_image(image))


# --- loading files ------------------------------------------------------------------------


def _tiny_vqgan_copy(tmp_path: Path, edit: Any = None) -> Path:
    """Copy the tiny VQGAN checkpoint and YAML to tmp_path, editing its state dict."""
    source = models.ensure_tiny_vqgan()
    shutil.copy(source.with_suffix(".yaml"), tmp_path / "edited.yaml")
    ckpt = torch.load(source, map_location="cpu", weights_only=True)
    if edit is not None:
        edit(ckpt["state_dict"])
    torch.save(ckpt, tmp_path / "edited.ckpt")
    return tmp_path / "edited.ckpt"


def test_vqgan_checkpoint_with_wrong_key_names_it(tmp_path: Path) -> None:
    """A renamed key fails loudly, naming the missing and the unexpected key and the file."""

    def rename(state: dict[str, torch.Tensor]) -> None:
        state["encoder.conv_inn.weight"] = state.pop("encoder.conv_in.weight")

    path = _tiny_vqgan_copy(tmp_path, rename)
    with pytest.raises(ModelError) as info:
        load_vqgan(str(path), CPU)
    assert "encoder.conv_in.weight" in str(info.value)
    assert "encoder.conv_inn.weight" in str(info.value)
    assert str(path) in str(info.value)


def test_vqgan_checkpoint_with_wrong_shape_fails(tmp_path: Path) -> None:
    """A key of the wrong shape fails with ModelError naming it."""

    def shrink(state: dict[str, torch.Tensor]) -> None:
        state["quantize.embedding.weight"] = state["quantize.embedding.weight"][:10]

    with pytest.raises(ModelError, match=r"quantize\.embedding\.weight"):
        load_vqgan(str(_tiny_vqgan_copy(tmp_path, shrink)), CPU)


def test_vqgan_checkpoint_loss_keys_are_ignored(tmp_path: Path, tiny_vqgan: VQGAN) -> None:
    """`loss.*` entries (discriminator, LPIPS) in a checkpoint are dropped, not an error."""

    def add_loss(state: dict[str, torch.Tensor]) -> None:
        state["loss.discriminator.main.0.weight"] = torch.zeros(3)

    vqgan = load_vqgan(str(_tiny_vqgan_copy(tmp_path, add_loss)), CPU)
    torch.testing.assert_close(vqgan.codebook, tiny_vqgan.codebook)
    assert vqgan.name == str(tmp_path / "edited.ckpt")


def test_vqgan_bare_state_dict_loads(tmp_path: Path, tiny_vqgan: VQGAN) -> None:
    """A checkpoint that is a bare state dict (no "state_dict" key) loads too."""
    path = _tiny_vqgan_copy(tmp_path)
    torch.save(torch.load(path, weights_only=True)["state_dict"], path)
    torch.testing.assert_close(load_vqgan(str(path), CPU).codebook, tiny_vqgan.codebook)


def test_vqgan_local_checkpoint_needs_yaml(tmp_path: Path) -> None:
    """A checkpoint with no YAML beside it says where the YAML must go."""
    path = _tiny_vqgan_copy(tmp_path)
    path.with_suffix(".yaml").unlink()
    with pytest.raises(ModelError, match=re.escape(str(tmp_path / "edited.yaml"))):
        load_vqgan(str(path), CPU)


def test_missing_local_paths(tmp_path: Path) -> None:
    """A path that does not exist gives "no such file"."""
    with pytest.raises(ModelError, match="no such file"):
        load_vqgan(str(tmp_path / "nothing.ckpt"), CPU)
    with pytest.raises(ModelError, match="no such file"):
        load_clip(str(tmp_path / "nothing.pt"), CPU)


def test_vqgan_truncated_checkpoint_says_to_fetch_it_again(tmp_path: Path) -> None:
    """A cut-off checkpoint (an incomplete download) is a ModelError saying what to do."""
    path = _tiny_vqgan_copy(tmp_path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ModelError, match=r"could not read .*incomplete download"):
        load_vqgan(str(path), CPU)


# Official taming checkpoints are Lightning checkpoints: besides state_dict they pickle
# Lightning's ModelCheckpoint (its class as the key of "callbacks"), which needs the real
# pytorch_lightning to unpickle and weights_only=False.
LIGHTNING_LOADS = """
import sys
import torch
from engine.models import load_vqgan

tiny = load_vqgan("tiny", torch.device("cpu"))
assert type(tiny.model).__module__ == "taming.models.vqgan", type(tiny.model)
assert "pytorch_lightning" not in sys.modules, "loading tiny imported Lightning"
assert "taming.main" not in sys.modules, "the taming.main stand-in was left behind"

official = load_vqgan(sys.argv[1], torch.device("cpu"))
assert torch.equal(official.codebook, tiny.codebook)
import pytorch_lightning
assert hasattr(pytorch_lightning, "Trainer"), "the stand-in was imported, not Lightning"
print("ok")
"""


@pytest.fixture
def lightning_checkpoint(tmp_path: Path) -> Path:
    """The tiny VQGAN saved like an official checkpoint, with Lightning objects pickled in."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    path = _tiny_vqgan_copy(tmp_path)
    ckpt = torch.load(path, weights_only=True)
    callback = ModelCheckpoint(monitor="val/rec_loss", save_top_k=3)
    ckpt.update(
        {
            "epoch": 4,
            "global_step": 1000,
            "pytorch-lightning_version": "1.0.8",
            "callbacks": {ModelCheckpoint: {"best_model_score": torch.tensor(0.5)}},
            "hyper_parameters": {"callback": callback},
        }
    )
    torch.save(ckpt, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    return path


def test_lightning_is_imported_only_by_a_checkpoint_that_needs_it(
    tiny_vqgan: VQGAN, lightning_checkpoint: Path
) -> None:
    """In a fresh process the tiny VQGAN loads without Lightning; a checkpoint that pickles
    Lightning objects loads afterwards, importing the real pytorch_lightning."""
    result = subprocess.run(
        [sys.executable, "-c", LIGHTNING_LOADS, str(lightning_checkpoint)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


def test_checkpoints_are_read_weights_only_unless_they_need_more(
    tiny_vqgan: VQGAN, lightning_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch.load runs with weights_only=True first, and again with False only on refusal."""
    calls: list[bool] = []
    load = torch.load

    def spy(*args: Any, weights_only: bool, **kwargs: Any) -> Any:
        calls.append(weights_only)
        return load(*args, weights_only=weights_only, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    models.ensure_tiny_vqgan()
    load_vqgan("tiny", CPU)
    assert calls == [True]
    calls.clear()
    official = load_vqgan(str(lightning_checkpoint), CPU)
    assert calls == [True, False]
    torch.testing.assert_close(official.codebook, tiny_vqgan.codebook)


def test_taming_stand_ins_leave_the_real_modules_in_place(
    tiny_vqgan: VQGAN, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Importing taming with the stand-ins puts back a pytorch_lightning already imported."""
    import pytorch_lightning
    import taming.models
    from taming.models import vqgan

    from engine import _taming_compat

    monkeypatch.delitem(sys.modules, "taming.models.vqgan")
    monkeypatch.setattr(taming.models, "vqgan", vqgan)  # restored after the re-import
    _taming_compat.ensure_taming_importable()
    again = sys.modules["taming.models.vqgan"]
    assert again is not vqgan
    assert again.VQModel.__mro__[1] is _taming_compat.LightningModule
    assert sys.modules["pytorch_lightning"] is pytorch_lightning
    assert "taming.main" not in sys.modules


def test_clip_local_archive_and_state_dict(tmp_path: Path, tiny_clip: CLIP) -> None:
    """A TorchScript archive loads by path; a plain state dict loads via build_model."""
    archive = tmp_path / "clip archive.pt"
    shutil.copy(models.ensure_tiny_clip(), archive)
    assert load_clip(str(archive), CPU).name == str(archive)
    state_file = tmp_path / "clip_state.pt"
    torch.save(tiny_clip.model.state_dict(), state_file)
    loaded = load_clip(str(state_file), CPU)
    for key, value in tiny_clip.model.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[key]), key
    assert loaded.encode_text(["door"]).shape == (1, 64)


def test_clip_garbage_file_fails(tmp_path: Path) -> None:
    """A file that is neither TorchScript nor a state dict gives ModelError naming it."""
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="could not load CLIP weights from"):
        load_clip(str(junk), CPU)


def test_missing_registry_model_says_how_to_download(empty_model_dir: Path) -> None:
    """A registry model not yet downloaded raises ModelMissing with the command to run."""
    with pytest.raises(ModelMissing) as info:
        load_vqgan(DEFAULT_VQGAN, CPU)
    exc = info.value
    assert exc.name == DEFAULT_VQGAN
    assert exc.path == empty_model_dir / "vqgan_imagenet_f16_16384.ckpt"
    assert exc.download_command == f"doorways models download {DEFAULT_VQGAN}"
    assert str(exc) == (
        f"model {DEFAULT_VQGAN} is not downloaded: run `doorways models download "
        f"{DEFAULT_VQGAN}` (or place the file at {exc.path})"
    )
    with pytest.raises(ModelMissing, match="doorways models download ViT-B/32"):
        load_clip("ViT-B/32", CPU)


def test_wrong_kind_and_unknown_random_names() -> None:
    """A CLIP name given as VQGAN, or random: of an unknown name, is a ModelError."""
    with pytest.raises(ModelError, match="is a clip model"):
        load_vqgan(DEFAULT_CLIP, CPU)
    with pytest.raises(ModelError, match="unknown model"):
        load_clip("random:ViT-Z/99", CPU)


# --- random models ------------------------------------------------------------------------


def test_random_default_vqgan_has_real_architecture(empty_model_dir: Path) -> None:
    """random:vqgan_imagenet_f16_16384 builds the real architecture in memory only."""
    vqgan = load_vqgan("random:" + DEFAULT_VQGAN, CPU)
    assert vqgan.codebook.shape == (16384, 256)
    assert vqgan.factor == 16
    assert vqgan.name == "random:" + DEFAULT_VQGAN
    assert not empty_model_dir.exists()


def test_random_gumbel_vqgan_is_seeded_and_encodes() -> None:
    """random:vqgan_gumbel_f8_8192 is deterministic and its encode/decode round-trips shapes."""
    first = load_vqgan("random:vqgan_gumbel_f8_8192", CPU)
    assert first.codebook.shape == (8192, 256) and first.factor == 8
    z = first.encode(torch.rand(1, 3, 16, 16))
    assert z.shape == (1, 256, 2, 2)
    assert first.decode(z).shape == (1, 3, 16, 16)
    codebook = first.codebook.clone()
    del first, z
    torch.testing.assert_close(load_vqgan("random:vqgan_gumbel_f8_8192", CPU).codebook, codebook)


def test_random_clip_vit_b32() -> None:
    """random:ViT-B/32 builds CLIP with 512-d embeddings and 224px input."""
    model = load_clip("random:ViT-B/32", CPU)
    assert model.input_size == 224
    assert model.encode_text(["a gate"]).shape == (1, 512)


# --- devices ------------------------------------------------------------------------------


def test_resolve_device() -> None:
    """auto/cpu/cuda[:N] resolve; bad or unavailable devices raise a clear ValueError."""
    assert models.resolve_device("cpu") == CPU
    assert models.resolve_device(" CPU ") == CPU
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert models.resolve_device().type == expected
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        models.resolve_device("gpu")
    with pytest.raises(ValueError, match="unknown device"):
        models.resolve_device("cuda:x")
    with pytest.raises(ValueError, match="cuda:99"):
        models.resolve_device("cuda:99")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            models.resolve_device("cuda")


# --- downloads ----------------------------------------------------------------------------


@dataclass
class FileServer:
    """A local HTTP server for download tests, with knobs for misbehaving."""

    base: str
    files: dict[str, bytes]
    ranges: list[str | None] = field(default_factory=list)  # Range header of each request
    ignore_range: bool = False
    truncate_next: bool = False  # send half of the next body, then hang up

    def entry(self, *names: str, sha256: dict[str, str | None] | None = None) -> dict[str, Any]:
        """A registry entry whose files are served here."""
        sha256 = sha256 or {}
        return {
            "kind": "vqgan",
            "files": [
                {
                    "name": name,
                    "url": f"{self.base}/{name}",
                    "size_bytes": len(self.files.get(name, b"")),
                    "sha256": sha256.get(
                        name, hashlib.sha256(self.files.get(name, b"")).hexdigest()
                    ),
                }
                for name in names
            ],
        }


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    """Serve a few files on 127.0.0.1 with Range support."""
    server_state: list[FileServer] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state = server_state[0]
            state.ranges.append(self.headers.get("Range"))
            body = state.files.get(self.path.lstrip("/"))
            if body is None:
                self.send_error(404)
                return
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if match and not state.ignore_range:
                start = int(match.group(1))
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            if state.truncate_next:
                state.truncate_next = False
                self.wfile.write(body[start : start + (len(body) - start) // 2])
                return
            self.wfile.write(body[start:])

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    payload = bytes(range(256)) * 10 * 1024  # 2.5 MiB: more than one download chunk
    state = FileServer(f"http://127.0.0.1:{httpd.server_port}", {"w.ckpt": payload, "w.yaml": b"x"})
    server_state.append(state)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def test_download_fetches_verifies_and_skips_present_files(
    file_server: FileServer, empty_model_dir: Path
) -> None:
    """Files land in model_dir() under their names; a second call makes no request."""
    entry = file_server.entry("w.ckpt", "w.yaml", sha256={"w.yaml": None})
    paths = registry.download("local", entry=entry, progress=False)
    assert paths == [empty_model_dir / "w.ckpt", empty_model_dir / "w.yaml"]
    assert paths[0].read_bytes() == file_server.files["w.ckpt"]
    assert sorted(p.name for p in empty_model_dir.iterdir()) == ["w.ckpt", "w.yaml"]
    requests_made = len(file_server.ranges)
    assert registry.download("local", entry=entry, progress=False) == paths
    assert len(file_server.ranges) == requests_made


def test_download_resumes_a_partial_file(file_server: FileServer, empty_model_dir: Path) -> None:
    """A .part file is continued with a Range request and the result verified."""
    empty_model_dir.mkdir()
    (empty_model_dir / "w.ckpt.part").write_bytes(file_server.files["w.ckpt"][:1000])
    registry.download("local", entry=file_server.entry("w.ckpt"), progress=False)
    assert file_server.ranges == ["bytes=1000-"]
    assert (empty_model_dir / "w.ckpt").read_bytes() == file_server.files["w.ckpt"]
    assert not (empty_model_dir / "w.ckpt.part").exists()


def test_download_interrupted_then_resumed(file_server: FileServer, empty_model_dir: Path) -> None:
    """A connection lost mid-file keeps the .part; the next run finishes it."""
    file_server.truncate_next = True
    entry = file_server.entry("w.ckpt")
    with pytest.raises(ModelError, match="run it again to resume"):
        registry.download("local", entry=entry, progress=False)
    assert not (empty_model_dir / "w.ckpt").exists()
    # What arrived in whole chunks was kept (at most half: the server sent no more).
    kept = (empty_model_dir / "w.ckpt.part").stat().st_size
    assert 0 < kept <= len(file_server.files["w.ckpt"]) // 2
    registry.download("local", entry=entry, progress=False)
    assert file_server.ranges == [None, f"bytes={kept}-"]
    assert (empty_model_dir / "w.ckpt").read_bytes() == file_server.files["w.ckpt"]


def test_download_restarts_when_range_is_ignored(
    file_server: FileServer, empty_model_dir: Path
) -> None:
    """A server answering 200 to a Range request makes the download start over."""
    file_server.ignore_range = True
    empty_model_dir.mkdir()
    (empty_model_dir / "w.ckpt.part").write_bytes(b"stale bytes")
    registry.download("local", entry=file_server.entry("w.ckpt"), progress=False)
    assert (empty_model_dir / "w.ckpt").read_bytes() == file_server.files["w.ckpt"]


def test_download_checksum_mismatch_deletes_the_file(
    file_server: FileServer, empty_model_dir: Path
) -> None:
    """A wrong sha256 raises ModelError saying so and leaves nothing behind."""
    entry = file_server.entry("w.ckpt", sha256={"w.ckpt": "0" * 64})
    with pytest.raises(ModelError, match=r"sha256 mismatch.*deleted"):
        registry.download("local", entry=entry, progress=False)
    assert list(empty_model_dir.iterdir()) == []


def test_download_without_checksum_rejects_a_tiny_answer(
    file_server: FileServer, empty_model_dir: Path
) -> None:
    """With no sha256, a file far smaller than expected (an error page) is deleted."""
    entry = file_server.entry("w.ckpt", sha256={"w.ckpt": None})
    entry["files"][0]["size_bytes"] = 100 << 20
    with pytest.raises(ModelError, match="probably an error page"):
        registry.download("local", entry=entry, progress=False)
    assert list(empty_model_dir.iterdir()) == []


def test_download_http_error(file_server: FileServer, empty_model_dir: Path) -> None:
    """A 404 is a ModelError naming the status and where to put the file."""
    with pytest.raises(ModelError, match="HTTP 404"):
        registry.download("local", entry=file_server.entry("gone.ckpt"), progress=False)


def test_download_shows_progress_on_stderr(
    file_server: FileServer, empty_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With progress on, a tqdm bar naming the file goes to stderr, nothing to stdout."""
    registry.download("local", entry=file_server.entry("w.ckpt"), progress=True)
    out, err = capsys.readouterr()
    assert "w.ckpt" in err and out == ""


def test_download_offline_says_where_to_put_the_file(empty_model_dir: Path) -> None:
    """With the network blocked, the error names the host, the URL and the target path."""
    with pytest.raises(ConnectionRefusedError):  # the session fixture's guard is active
        socket.create_connection(("192.0.2.1", 80), timeout=1)
    url = "http://192.0.2.1/w.ckpt"
    entry = {"kind": "vqgan", "files": [{"name": "w.ckpt", "url": url, "sha256": None}]}
    with pytest.raises(ModelError) as info:
        registry.download("offline", entry=entry, progress=False, timeout=5)
    message = str(info.value)
    assert "could not reach 192.0.2.1" in message
    assert url in message and str(empty_model_dir / "w.ckpt") in message
    assert not (empty_model_dir / "w.ckpt").exists()
    assert {p.name for p in empty_model_dir.iterdir()} <= {"w.ckpt.part"}


def test_download_registry_model_offline(empty_model_dir: Path) -> None:
    """download() of a real registry entry fails cleanly when the host cannot be reached."""
    with pytest.raises(ModelError, match=r"could not reach openaipublic\.azureedge\.net"):
        registry.download("ViT-B/32", progress=False, timeout=5)
    assert not (empty_model_dir / "ViT-B-32.pt").exists()


def test_download_falls_back_to_the_next_mirror(
    file_server: FileServer, empty_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """First mirror dead (nothing listens there), second answers 404, third has the file:
    the file comes from the third, and each step is said on stderr."""
    dead = _closed_port_url()
    entry = file_server.entry("w.ckpt")
    good = entry["files"][0]["url"]
    entry["files"][0]["url"] = f"{dead}/w.ckpt"
    entry["files"][0]["mirrors"] = [f"{file_server.base}/missing/w.ckpt", good]
    [path] = registry.download("local", entry=entry, progress=True)
    assert path.read_bytes() == file_server.files["w.ckpt"]
    err = capsys.readouterr().err
    assert f"w.ckpt: {dead.removeprefix('http://')} could not be reached" in err
    assert "answered HTTP 404" in err and err.count("trying the next mirror") == 2


def test_a_mirror_that_stops_half_way_is_resumed_from_the_next(
    file_server: FileServer, empty_model_dir: Path
) -> None:
    """The first host hangs up half way; the second continues the .part with a Range."""
    file_server.truncate_next = True
    entry = file_server.entry("w.ckpt")
    url = entry["files"][0]["url"]
    entry["files"][0]["mirrors"] = [url.replace("127.0.0.1", "localhost")]
    [path] = registry.download("local", entry=entry, progress=False)
    assert path.read_bytes() == file_server.files["w.ckpt"]
    assert file_server.ranges[0] is None and file_server.ranges[1].startswith("bytes=")


def test_all_mirrors_dead_is_one_message_naming_each_host(
    file_server: FileServer, empty_model_dir: Path
) -> None:
    """Every mirror fails, each its own way: one ModelError listing every host and why."""
    dead = _closed_port_url()
    entry = file_server.entry("w.ckpt", sha256={"w.ckpt": "0" * 64})
    local = entry["files"][0]["url"]
    entry["files"][0]["url"] = f"{dead}/w.ckpt"
    entry["files"][0]["mirrors"] = [f"{file_server.base}/gone.ckpt", local]
    with pytest.raises(ModelError) as failed:
        registry.download("local", entry=entry, progress=False)
    message = str(failed.value)
    assert message.startswith("no mirror of w.ckpt delivered it: ")
    host = file_server.base.removeprefix("http://")
    assert f"{dead.removeprefix('http://')} could not be reached" in message
    assert f"{host} answered HTTP 404" in message
    assert f"{host} sent a file whose sha256 is" in message
    assert str(empty_model_dir / "w.ckpt") in message and "\n" not in message
    assert list(empty_model_dir.iterdir()) == []


def test_an_unavailable_model_says_so_in_the_list_and_at_download(
    empty_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """wikiart_16384's only host is gone: `models list` says so, `models download` refuses
    at once (no connection tried), a missing file names it; placed by hand, it is there."""
    from engine import cli

    assert cli.main(["models", "list"]) == 0
    [line] = [line for line in capsys.readouterr().out.splitlines() if "wikiart_16384" in line]
    assert "UNAVAILABLE: its only host, eaidata.bmk.sh, has been gone for years" in line
    assert cli.main(["models", "download", "wikiart_16384"]) == 2
    err = capsys.readouterr().err
    assert "wikiart_16384 cannot be downloaded: its only host" in err
    assert str(empty_model_dir / "wikiart_16384.ckpt") in err and "could not reach" not in err
    with pytest.raises(ModelMissing, match="is not downloaded, and cannot be: its only host"):
        registry.weights_path("wikiart_16384")

    empty_model_dir.mkdir()
    for name in ("wikiart_16384.ckpt", "wikiart_16384.yaml"):
        (empty_model_dir / name).write_bytes(b"placed by hand")
    assert registry.download("wikiart_16384") == registry.model_paths("wikiart_16384")
    assert cli.main(["models", "list"]) == 0
    assert "downloaded:" in next(
        line for line in capsys.readouterr().out.splitlines() if "wikiart_16384" in line
    )


def _closed_port_url() -> str:
    """http://127.0.0.1:PORT where nothing listens (a port taken, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_download_rejects_tiny_and_unknown_names() -> None:
    """tiny needs no download; an unknown name lists the known ones."""
    with pytest.raises(ModelError, match="no download"):
        registry.download("tiny")
    with pytest.raises(ModelError, match="known models"):
        registry.download("nope")


def test_fused_swish_matches_taming(tiny_vqgan: VQGAN) -> None:
    """The fused swish decodes as taming's own `x * sigmoid(x)` does, gradients included."""
    from taming.modules.diffusionmodules import model as taming_model

    z = tiny_vqgan.codebook[:16].T.reshape(1, -1, 4, 4).clone()

    def decode_with(nonlinearity: object) -> tuple[torch.Tensor, torch.Tensor]:
        fused = taming_model.nonlinearity
        taming_model.nonlinearity = nonlinearity
        try:
            latent = z.clone().requires_grad_(True)
            image = tiny_vqgan.decode(latent)
            image.square().mean().backward()
            assert latent.grad is not None
            return image.detach(), latent.grad
        finally:
            taming_model.nonlinearity = fused

    image, grad = decode_with(torch.nn.functional.silu)
    reference_image, reference_grad = decode_with(lambda x: x * torch.sigmoid(x))
    assert (image - reference_image).abs().max() < 1e-5
    assert torch.allclose(grad, reference_grad, rtol=1e-4, atol=1e-7)


LEAN_LOADS = """
import sys
import torch
from engine.models import load_clip, load_vqgan

load_vqgan("tiny", torch.device("cpu"))
load_clip("tiny", torch.device("cpu")).encode_text(["a door"])
unused = ("torchvision", "pkg_resources", "lpips", "pytorch_lightning")
heavy = [name for name in unused if name in sys.modules]
assert not heavy, heavy
print("ok")
"""


def test_loading_the_models_imports_no_torchvision(tiny_vqgan: VQGAN, tiny_clip: CLIP) -> None:
    """A worker's models load without torchvision, pkg_resources, lpips or Lightning (about
    2 s of imports per process that inference never uses)."""
    result = subprocess.run(
        [sys.executable, "-c", LEAN_LOADS],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


@pytest.mark.parametrize(
    "texts",
    [["a doorway"], ["entrance to heaven", "entrance to hell by James Gurney"], ["word " * 100]],
)
def test_tokenize_is_openai_clips(texts: list[str]) -> None:
    """The tokenizer gives openai-clip's ids, over-long prompts truncated the same way."""
    import clip

    expected = clip.tokenize(texts, context_length=77, truncate=True)
    assert torch.equal(_clip_compat.tokenize(texts, 77), expected)
