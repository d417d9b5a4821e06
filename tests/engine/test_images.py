"""Hostile images: every way of opening one refuses it in one line, or reads its first frame."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from PIL import Image

from engine import cli
from engine.images import MAX_PIXELS, MAX_TEXT_BYTES, ImageError, read_image, read_text
from engine.outputs import read_request, read_request_bytes
from engine.prompts import Prompt
from engine.request import Request
from tests import hostile_images as hostile

TINY = ["--vqgan", "tiny", "--clip", "tiny", "--size", "64", "64", "--cutn", "2"]

# name → (the file's bytes, what the one-line refusal says)
REFUSED = {
    "bomb.png": (hostile.png_declaring(30000, 30000), "declares 30000×30000 pixels (900,000,000)"),
    "wide.png": (hostile.png_declaring(9000, 8000), "declares 9000×8000 pixels"),
    "wide.gif": (hostile.gif_declaring(9000, 9000), "declares 9000×9000 pixels (81,000,000)"),
    "bomb.gif": (hostile.gif_declaring(30000, 30000), "declares 900,000,000 pixels; Doorways"),
    "cut.png": (hostile.truncated_png(), "cannot read cut.png as an image: image file is trunc"),
    "text.png": (hostile.png_with_text("tEXt", 2 * MAX_TEXT_BYTES), "bytes of PNG text (tEXt"),
    "zip.png": (hostile.png_with_text("zTXt", 64 * MAX_TEXT_BYTES), "bytes of PNG text (zTXt"),
    "note.png": (b"not an image at all", "cannot read note.png as an image: unknown image format"),
    "empty.png": (b"", "cannot read empty.png as an image: unknown image format"),
}  # fmt: skip


@pytest.mark.parametrize("name", REFUSED)
def test_hostile_files_are_refused_in_one_line(name: str, tmp_path: Path) -> None:
    """From a file or from bytes, the same single line naming the image."""
    data, message = REFUSED[name]
    (tmp_path / name).write_bytes(data)
    for source, shown in ((tmp_path / name, str(tmp_path / name)), (data, name)):
        with pytest.raises(ImageError) as refused:
            read_image(source, None if isinstance(source, Path) else name)
        assert message.replace(name, shown) in str(refused.value)
        assert "\n" not in str(refused.value) and shown in str(refused.value)
    with pytest.raises(ImageError, match=r"declares|PNG text|cannot read"):
        read_text(data, name)


def test_the_limits_are_stated_and_the_largest_allowed_image_reads() -> None:
    """The message states the limit; an image just inside it is not refused."""
    with pytest.raises(ImageError, match=f"at most {MAX_PIXELS:,} pixels \\(8192×8192\\)"):
        read_image(hostile.png_declaring(8193, 8192), "x")
    # The header check passes 8192×8192; this file's data ends after a row, so it is cut.
    with pytest.raises(ImageError, match="cannot read x as an image"):
        read_image(hostile.png_declaring(8192, 8192), "x")
    text = hostile.png_with_text("zTXt", MAX_TEXT_BYTES // 2)
    assert len(read_image(text, "t").text["comment"]) == MAX_TEXT_BYTES // 2


@pytest.mark.parametrize("format", ["GIF", "PNG"])
def test_an_animation_gives_its_first_frame_and_says_so(format: str) -> None:
    """Animated GIF and APNG: the first (red) frame, and a note naming the file."""
    loaded = read_image(hostile.animated(format), f"door.{format.lower()}")
    assert loaded.image.mode == "RGB" and loaded.image.getpixel((5, 5)) == (255, 0, 0)
    assert loaded.note == f"door.{format.lower()} is animated: its first frame is used"
    assert read_image(hostile.plain_png(), "still.png").note is None


def test_missing_and_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"image not found: .*nothing\.png"):
        read_image(tmp_path / "nothing.png")
    with pytest.raises(ImageError, match=r"cannot read .* as an image: Is a directory"):
        read_image(tmp_path)


def test_request_inputs_and_parameters_go_through_the_checks(tmp_path: Path) -> None:
    """check_inputs (init image, image prompts) and read_request refuse; notes come back."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(hostile.png_declaring(30000, 30000))
    gif = tmp_path / "door.gif"
    gif.write_bytes(hostile.animated("GIF"))
    base = Request(prompts=(Prompt("a door"),), vqgan="tiny", clip="tiny")
    with pytest.raises(ValueError, match=r"bomb\.png declares 30000×30000"):
        base.replace(init_image=str(bomb)).check_inputs()
    with pytest.raises(ValueError, match=r"bomb\.png declares 30000×30000"):
        base.replace(image_prompts=(Prompt(str(bomb)),)).check_inputs()
    notes = base.replace(init_image=str(gif)).check_inputs()
    assert notes == [f"{gif} is animated: its first frame is used"]
    with pytest.raises(ValueError, match=r"bomb\.png declares 30000×30000"):
        read_request(bomb)
    with pytest.raises(ValueError, match=r"upload\.png carries more than"):
        read_request_bytes(hostile.png_with_text("zTXt", 8 * MAX_TEXT_BYTES), "upload.png")


@pytest.mark.parametrize("name", ["bomb.png", "cut.png", "zip.png", "note.png"])
@pytest.mark.parametrize("option", ["--init-image", "--image-prompts"])
def test_cli_refuses_a_hostile_image_with_status_2(
    name: str, option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """`doorways generate` with a hostile init image or image prompt: one line, exit 2, no
    painting (no PNG, no preview); `doorways params` likewise."""
    monkeypatch.chdir(tmp_path)
    data, message = REFUSED[name]
    Path(name).write_bytes(data)
    assert cli.main(["generate", "a door", *TINY, option, name, "-o", "out/out.png"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("doorways: error: ") and message in err, err
    assert list(tmp_path.iterdir()) == [tmp_path / name]
    assert cli.main(["params", name]) == 2
    assert message in capsys.readouterr().err


def test_cli_paints_from_the_first_frame_of_an_animation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gif = tmp_path / "door.gif"
    gif.write_bytes(hostile.animated("GIF"))
    argv = ["generate", "a door", *TINY, "--iterations", "1", "--init-image", str(gif)]
    assert cli.main([*argv, "-o", str(tmp_path / "out.png")]) == 0
    err = capsys.readouterr().err
    assert f"note: {gif} is animated: its first frame is used" in err
    with Image.open(tmp_path / "out.png") as image:
        assert image.size == (64, 64)


def test_gif_header_maker_declares_what_it_says() -> None:
    """The GIF bomb's logical screen is what PIL reads (so the test above tests the GIF path)."""
    data = hostile.gif_declaring(300, 200)
    assert struct.unpack("<HH", data[6:10]) == (300, 200)
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (300, 200)
