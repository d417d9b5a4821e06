"""The `doorways` command line, as a person runs it."""

import os
import shlex
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from PIL import Image

from engine import cli
from engine.request import Request

TINY = ["--vqgan", "tiny", "--clip", "tiny"]


def doorways(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the installed console script in a fresh process."""
    command = [str(Path(sys.executable).with_name("doorways")), *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=os.environ.copy())


def test_generate_then_params_reproduces(tmp_path: Path) -> None:
    """The issue's offline run writes the PNG, says where, and `params` prints its command."""
    made = doorways(
        "generate", "entrance to heaven | entrance to hell", *TINY, "--size", "96", "64",
        "--iterations", "3", "--seed", "1", "-o", "out.png", cwd=tmp_path,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "saved out.png" in made.stderr and "tiny models are untrained" in made.stderr
    with Image.open(tmp_path / "out.png") as image:
        assert image.size == (96, 64)
        pixels = image.tobytes()

    params = doorways("params", "out.png", cwd=tmp_path)
    assert params.returncode == 0
    call = params.stdout.strip()
    assert call.startswith("doorways generate 'entrance to heaven | entrance to hell' --size 96 64")
    assert "--seed 1" in call and "--vqgan tiny" in call

    assert cli.main([*shlex.split(call)[1:], "-o", str(tmp_path / "again.png")]) == 0
    with Image.open(tmp_path / "again.png") as again:
        assert again.tobytes() == pixels


def test_entrance_reproduces_pixel_for_pixel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An entrance image's call string is a plain `doorways generate` giving the same pixels."""
    out = tmp_path / "e.png"
    argv = ["entrance", "heaven | hell", *TINY, "--size", "128", "64", "--iterations", "3"]
    assert cli.main([*argv, "-o", str(out)]) == 0
    with Image.open(out) as image:
        call, pixels = image.text["parameters"], image.tobytes()  # type: ignore[attr-defined]
    assert call.startswith(
        "doorways generate 'entrance to heaven by James Gurney | entrance to hell by James Gurney'"
    )
    for option in ("--lr 0.025", "--panorama smooth", "--mirror 0.5", "--semantic-symmetry 0.1"):
        assert option in call
    capsys.readouterr()
    assert cli.main([*shlex.split(call)[1:], "-o", str(out)]) == 0
    assert f"saved {tmp_path / 'e_1.png'}" in capsys.readouterr().err
    with Image.open(tmp_path / "e_1.png") as again:
        assert again.tobytes() == pixels


def test_two_clip_models_paint_and_reproduce(
    tmp_path: Path, small_clip_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--clip tiny,PATH:0.5`, two tiny CLIPs of input sizes 224 and 128: the picture's call
    string and its PNG metadata carry the list, and the call string repaints it exactly."""
    from engine.outputs import read_request

    out = tmp_path / "two.png"
    clips = f"tiny,{small_clip_path}:0.5"
    argv = ["generate", "heaven | hell", "--vqgan", "tiny", "--clip", clips, "--size", "64", "48",
            "--iterations", "3", "--cutn", "4", "--seed", "2", "--mirror", "0.5",
            "--semantic-symmetry", "0.1"]  # fmt: skip
    assert cli.main([*argv, "-o", str(out)]) == 0
    with Image.open(out) as image:
        call, pixels = image.text["parameters"], image.tobytes()  # type: ignore[attr-defined]
    assert f"--clip {shlex.quote(clips)}" in call
    request = read_request(out)
    assert request.clip == clips and [spec.weight for spec in request.clips] == [1.0, 0.5]
    assert Request.from_call_string(call) == request
    assert cli.main([*shlex.split(call)[1:], "-o", str(tmp_path / "again.png")]) == 0
    with Image.open(tmp_path / "again.png") as again:
        assert again.tobytes() == pixels
    capsys.readouterr()
    # The same models weighted otherwise paint another picture.
    other = [*argv[:5], f"tiny,{small_clip_path}:3", *argv[6:], "-o", str(tmp_path / "3.png")]
    assert cli.main(other) == 0
    with Image.open(tmp_path / "3.png") as reweighted:
        assert reweighted.tobytes() != pixels


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["generate", "a", "--iterations", "lots"], "argument --iterations: invalid int value"),
        (["generate", "a", "--size", "0", "64"], "width must be between 16 and 4096, not 0"),
        (["generate", "a | ", *TINY], "prompt part 2 of 2 is empty"),
        (["generate", "a", "--vqgan", "vqgan_nonesuch"], "unknown vqgan model 'vqgan_nonesuch'"),
        (["generate", "a", *TINY, "--init-image", "missing.png"], "image not found: missing.png"),
        (["generate", "a", "--device", "gpu"], "unknown device 'gpu'"),
        (["generate", "a", *TINY[:2], "--clip", "tiny,"], "CLIP list entry 2 of 2 is empty"),
        (["generate", "a", *TINY[:2], "--clip", "tiny,tiny:2"], "CLIP tiny is listed twice"),
        (["generate", "a", *TINY[:2], "--clip", "tiny:0"], "CLIP tiny has weight 0"),
        (["generate", "a", *TINY[:2], "--clip", "tiny,ViT-Z/9"], "unknown clip model 'ViT-Z/9'"),
        (["generate", "a", "--optimizer", "sgd"], "invalid choice: 'sgd'"),
        (["entrance", "heaven"], "an entrance needs two or more realms"),
        (["entrance", "--preset", "heaven-hel"], "unknown preset 'heaven-hel' (did you mean"),
        (["params", "nothing.png"], "image not found: nothing.png"),
        (["models", "download", "nonesuch"], "nonesuch"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_status_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Every bad value or unknown name: one line on stderr, exit status 2, no traceback."""
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("doorways: error: "), err
    assert message in err


def test_missing_model_names_the_download_command(capsys: pytest.CaptureFixture[str]) -> None:
    """A registry model that isn't downloaded says how to get it, and how to try offline."""
    assert cli.main(["generate", "a", "--vqgan", "vqgan_imagenet_f16_1024", "--clip", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "doorways models download vqgan_imagenet_f16_1024" in err and err.count("\n") == 1
    assert "`--vqgan tiny --clip tiny`" in err


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["generate"], ["usage: doorways generate", "--size W H", "PROMPTS", "required: PROMPTS"]),
        (["entrance"], ["usage: doorways entrance", "--preset", "REALMS", "or --preset NAME"]),
        ([], ["usage: doorways", "generate", "entrance", "presets", "`doorways COMMAND --help`"]),
        (["models"], ["usage: doorways models", "download", "required: ACTION"]),
        (["tasks", "run"], ["usage: doorways tasks run", "--out-root DIR", "required: FOLDER"]),
        (["params"], ["usage: doorways params", "IMAGE.png"]),
    ],
)  # fmt: skip
def test_nothing_given_shows_the_usage(
    argv: list[str], shown: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A command without its arguments answers with what it takes, not only an error line."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    for text in shown:
        assert text in err, err
    assert "--help` " in err.splitlines()[-1]


def test_reproduce_line_runs_in_a_new_shell(tmp_path: Path) -> None:
    """The printed `reproduce:` line works pasted into a shell where no venv is active."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != bin_dir)
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"} | {"PATH": path}
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    argv = ["generate", "a | b", *TINY, "--size", "64", "64", "--iterations", "3", "-o", "a.png"]
    made = subprocess.run(
        [str(Path(sys.executable).with_name("doorways")), *argv],
        cwd=first, capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    (line,) = [x for x in made.stderr.splitlines() if x.startswith("reproduce: ")]
    new_shell = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    # The same models and thread count (CPU sums depend on it), so the same pixels.
    for name in ("DOORWAYS_MODELS", "OMP_NUM_THREADS"):
        if name in os.environ:
            new_shell[name] = os.environ[name]
    again = subprocess.run(
        ["sh", "-c", line.removeprefix("reproduce: ")],
        cwd=second, capture_output=True, text=True, env=new_shell,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    with Image.open(first / "a.png") as one, Image.open(second / "output.png") as two:
        assert one.tobytes() == two.tobytes()


def test_reproduce_says_plain_doorways_only_where_the_path_finds_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Plain `doorways` when a new shell's PATH finds this program; its full path otherwise."""
    launcher = Path(sys.executable).with_name("doorways")
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    monkeypatch.setenv("PATH", f"{launcher.parent}{os.pathsep}/usr/bin:/bin")
    assert cli.doorways_command() == "doorways"
    # Only on the PATH because a virtual environment is active: a new shell won't have it.
    monkeypatch.setenv("VIRTUAL_ENV", str(launcher.parent.parent))
    assert cli.doorways_command() != "doorways"
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.delenv("VIRTUAL_ENV")
    shown = cli.doorways_command()
    assert Path(os.path.expanduser(shlex.split(shown)[0])).samefile(launcher)


def test_offline_download_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a network, `models download` says it could not reach the host and where to put it."""
    assert cli.main(["models", "download", "ViT-B/32"]) == 2
    err = capsys.readouterr().err
    assert "could not reach" in err and "ViT-B-32.pt" in err


def test_generate_help_documents_every_option() -> None:
    """`doorways generate --help` lists every request field's flag."""
    text = cli.build_parser()._subparsers._group_actions[0].choices["generate"].format_help()  # type: ignore[union-attr]
    for f in fields(Request)[1:]:
        assert f.metadata["flag"] in text


def test_presets_and_models_list(capsys: pytest.CaptureFixture[str]) -> None:
    """The gallery and the registry are listed."""
    assert cli.main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "heaven-hell" in out and "Climate Apocalypse / An Uncertain But Hopeful Future" in out
    assert "doorways entrance --preset NAME`" in out  # how to use one
    assert cli.main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "vqgan_imagenet_f16_16384" in out and "ViT-B/32" in out and "not downloaded" in out
    assert "--vqgan tiny --clip tiny" in out and "random:NAME" in out
