"""Task files, the pure part: text in, (Request, output) jobs out, every limit explained."""

import json
import random
from pathlib import Path
from typing import Any

import pytest

from engine.config import TasksConfig, load_config
from engine.prompts import Prompt
from engine.request import Request
from engine.taskfile import (
    TaskFileError,
    TaskLimits,
    batches,
    describe,
    expand_task,
    parse_task,
    rebatch,
    task_summary,
)

# The runvqgan README's example, field by field.
RUNVQGAN = {
    "text": ["A painting of a dog|surreal:0.25|weird:0.1"],
    "style": ["", "Banksy"],
    "iterations": [200],
    "out_file": ["John_dog"],
    "out_folder": ["output"],
    "portrait": [False],
    "each": [3],
}


def task(**fields: Any) -> str:
    """A small valid task file with `fields` changed (None removes one)."""
    data: dict[str, Any] = {"text": ["A painting of a dog"], "out_file": ["dog"]}
    data.update(fields)
    return json.dumps({k: v for k, v in data.items() if v is not None})


def problems(text: str, **kwargs: Any) -> list[str]:
    with pytest.raises(TaskFileError) as caught:
        expand_task(text, **kwargs)
    assert isinstance(caught.value, ValueError)  # the bot and the CLI catch ValueError
    return caught.value.problems


def test_runvqgan_example_expands_styles_times_each() -> None:
    """2 styles × each 3 = 6 jobs, style-major; the style joins the first part only."""
    jobs = expand_task(json.dumps(RUNVQGAN), out_root="root", rng=random.Random(7))
    assert len(jobs) == 6
    assert [(j.index, j.style, j.repetition) for j in jobs] == [
        (0, "", 1), (1, "", 2), (2, "", 3), (3, "Banksy", 1), (4, "Banksy", 2), (5, "Banksy", 3)
    ]  # fmt: skip
    plain = (Prompt("A painting of a dog"), Prompt("surreal", 0.25), Prompt("weird", 0.1))
    assert jobs[0].request.prompts == plain
    assert jobs[3].request.prompts == (
        Prompt("A painting of a dog in the style of Banksy"),
        *plain[1:],
    )
    for job in jobs:
        assert job.request.size == (450, 300) and job.request.iterations == 200
        assert job.folder == Path("root/output") and job.out_file == "John_dog"
        assert job.output == Path("root/output/John_dog.png")
        assert job.request.output == "output/John_dog.png"  # no server path in call strings
    # Each repetition has its own seed, the same for every style (styles compare fairly).
    seeds = [j.request.seed for j in jobs]
    assert len(set(seeds[:3])) == 3 and seeds[:3] == seeds[3:]
    assert all(isinstance(s, int) for s in seeds)


def test_call_strings_pin_the_seed_and_parse_back() -> None:
    """Every job's call string names its seed and output and gives back an equal Request."""
    for job in expand_task(json.dumps(RUNVQGAN)):
        call = job.request.to_call_string()
        assert f"--seed {job.request.seed}" in call and "--output output/John_dog.png" in call
        assert Request.from_call_string(call) == job.request


def test_bare_values_mean_lists_of_one() -> None:
    """`"each": 2` reads as `"each": [2]`, `"style": "Banksy"` as `["Banksy"]`."""
    listed = {k: v for k, v in RUNVQGAN.items()}
    bare = {k: (v[0] if k != "style" else "Banksy") for k, v in RUNVQGAN.items()}
    listed["style"] = ["Banksy"]
    rng_a, rng_b = random.Random(1), random.Random(1)
    assert expand_task(json.dumps(bare), rng=rng_a) == expand_task(json.dumps(listed), rng=rng_b)


def test_seeds_given_drawn_and_repeatable() -> None:
    """`seed` s gives s, s+1, …; a list gives each; none drawn from the rng passed in."""
    assert [j.request.seed for j in expand_task(task(seed=[5], each=[3]))] == [5, 6, 7]
    assert [j.request.seed for j in expand_task(task(seed=[9, 2], each=2))] == [9, 2]
    first = expand_task(task(each=4), rng=random.Random(3))
    again = expand_task(task(each=4), rng=random.Random(3))
    assert [j.request.seed for j in first] == [j.request.seed for j in again]
    assert len({j.request.seed for j in first}) == 4
    assert "seed: give one seed, or one for each of the 3 repetitions" in problems(
        task(seed=[1, 2], each=3)
    )
    assert any("need different seeds" in p for p in problems(task(seed=[4, 4], each=2)))


def test_count_batches_the_repetitions() -> None:
    """each 10, count 4: batches of 4, 4 and the 2 left over, per style; a batch paints
    seeds s, s+1, …, and each picture's request names its batch and index, so its call
    string repaints it exactly; a batch left with one picture is painted alone."""
    jobs = expand_task(task(each=10, count=4, seed=20, style=["", "Klee"]))
    assert len(jobs) == 20
    assert batches(jobs, range(20)) == [
        (0, 1, 2, 3), (4, 5, 6, 7), (8, 9), (10, 11, 12, 13), (14, 15, 16, 17), (18, 19)
    ]  # fmt: skip
    assert [j.seed for j in jobs[:10]] == list(range(20, 30)) == [j.seed for j in jobs[10:]]
    first, last = jobs[1].request, jobs[9].request
    assert (first.seed, first.count, first.index) == (20, 4, 2)
    assert (last.seed, last.count, last.index) == (28, 2, 2)
    assert jobs[1].batch_request == first.replace(index=None)
    assert "--seed 20 --count 4 --index 2" in first.to_call_string()
    assert Request.from_call_string(first.to_call_string()) == first
    assert batches(jobs, [2, 3, 9]) == [(2, 3), (9,)]  # what is left after a crash
    assert describe(jobs[4:8], 20) == "images 5-8 of 20 (no style, repetitions 5-8)"
    assert describe(jobs[:1], 20) == "image 1 of 20 (no style, repetition 1)"
    assert "× each 10 in batches of 4, 450×300" in task_summary(jobs)

    alone = expand_task(task(each=5, count=4, seed=1))[4].request
    assert (alone.seed, alone.count, alone.index) == (5, 1, None)
    plain = expand_task(task(each=2, seed=1))
    assert [(j.request.count, j.request.index, j.batch) for j in plain] == [
        (1, None, 0), (1, None, 1)
    ]  # fmt: skip
    assert "in batches" not in task_summary(plain)


def test_rebatch_splits_batches_keeping_each_pictures_seed() -> None:
    """A server that paints at most 2 a batch: each 5 in batches of 4 becomes batches of 2,
    2 and 1 (the 1 left over painted alone), every picture at the seed the file gave it,
    its request naming its new batch and index."""
    jobs = rebatch(expand_task(task(each=5, count=4, seed=20)), 2)
    assert batches(jobs, range(5)) == [(0, 1), (2, 3), (4,)]
    assert [j.seed for j in jobs] == [20, 21, 22, 23, 24]
    assert [(j.request.seed, j.request.count, j.request.index) for j in jobs] == [
        (20, 2, 1), (20, 2, 2), (22, 2, 1), (22, 2, 2), (24, 1, None)
    ]  # fmt: skip
    assert [j.batch for j in jobs] == [0, 0, 2, 2, 4]
    assert rebatch(jobs, 4) == jobs  # never merges batches
    with pytest.raises(ValueError, match="at least 1 picture"):
        rebatch(jobs, 0)


def test_count_draws_one_seed_a_batch_and_checks_given_ones() -> None:
    """Drawn seeds follow on within a batch; a list of seeds must, or the file is refused;
    count is 1 to 4 and at most each."""
    drawn = expand_task(task(each=6, count=3), rng=random.Random(5))
    seeds = [j.seed for j in drawn]
    assert seeds[1:3] == [seeds[0] + 1, seeds[0] + 2] and seeds[4:] == [seeds[3] + 1, seeds[3] + 2]
    assert drawn[2].request.seed == seeds[0] and drawn[5].request.seed == seeds[3]
    listed = expand_task(task(each=4, count=2, seed=[7, 8, 3, 4]))
    assert [j.seed for j in listed] == [7, 8, 3, 4]
    assert problems(task(each=4, count=2, seed=[7, 8, 3, 5])) == [
        "seed: a batch of count 2 paints seeds that follow on (s, s+1, …); repetitions 3-4 "
        "have [3, 5]"
    ]
    assert problems(task(each=8, count=5)) == ["count: 5 pictures a batch; give 1 to 4"]
    assert problems(task(count=0)) == ["count: 0 pictures a batch; give 1 to 4"]
    assert problems(task(each=2, count=3)) == [
        "count: 3 pictures a batch, but each paints only 2: give count 1 to 2 (or raise each)"
    ]
    assert problems(task(count="four")) == ['count: "four" is not a whole number']


@pytest.mark.parametrize(
    ("portrait", "resolution", "size"),
    [
        (None, None, (450, 300)),
        (False, None, (450, 300)),
        (True, None, (300, 450)),
        (False, [300, 450], (450, 300)),  # portrait decides the orientation
        (True, [450, 300], (300, 450)),
        (True, [64, 48], (48, 64)),
        (False, [48, 64], (64, 48)),
        (False, [[64, 64]], (64, 64)),  # a list of one [W, H] reads the same
        ([True], [400, 250], (250, 400)),
    ],
)
def test_portrait_and_resolution(portrait: Any, resolution: Any, size: tuple[int, int]) -> None:
    """Landscape 450×300 by default, portrait 300×450; `resolution` turned by `portrait`."""
    jobs = expand_task(task(portrait=portrait, resolution=resolution))
    assert jobs[0].request.size == size


LIMIT_CASES = [
    ({"iterations": [6001]}, "iterations: 6001 is outside this server's limit of 1 to 6000"),
    ({"iterations": [0]}, "iterations: 0 is outside this server's limit of 1 to 6000"),
    ({"each": [26]}, "each: 26 is outside this server's limit of 1 to 25"),
    ({"each": [0]}, "each: 0 is outside this server's limit of 1 to 25"),
    (
        {"resolution": [451, 300]},
        "resolution: 451×300 is larger than this server's limit of 450×300 (300×450 in portrait)",
    ),
    (
        {"resolution": [300, 460], "portrait": [True]},
        "resolution: 300×460 is larger than this server's limit of 450×300 (300×450 in portrait)",
    ),
    ({"resolution": [400, 8]}, "resolution: 400×8 is too small (at least 16 px a side)"),
    ({"resolution": [400]}, "resolution: give two numbers [W, H], not [400]"),
    (
        {"text": ['A "painting" of a dog']},
        'text: must not contain quotation marks (found "): \'A "painting" of a dog\'',
    ),
    ({"text": ["a dog's bone"]}, "text: must not contain quotation marks (found ')"),
    ({"text": ["ein „Hund“"]}, "text: must not contain quotation marks (found „ “)"),
    ({"style": ["", "'Banksy'"]}, "style: must not contain quotation marks (found ')"),
    (
        {"style": [str(i) for i in range(5)], "each": [21]},
        "5 style(s) × each 21 = 105 images; this server makes at most 100 per task file",
    ),
]


@pytest.mark.parametrize(("fields", "message"), LIMIT_CASES)
def test_every_limit_is_refused_with_its_reason(fields: dict[str, Any], message: str) -> None:
    """Iterations, each, resolution, images per file and quotation marks."""
    found = problems(task(**fields))
    assert any(p.startswith(message) for p in found), found


def test_limits_are_configurable() -> None:
    """A server with smaller (or larger) limits says its own numbers."""
    limits = TaskLimits(max_iterations=100, max_each=2, max_resolution=(256, 256), max_images=3)
    found = problems(task(iterations=200, each=3, resolution=[300, 200]), limits=limits)
    assert found == [
        "iterations: 200 is outside this server's limit of 1 to 100",
        "each: 3 is outside this server's limit of 1 to 2",
        "resolution: 300×200 is larger than this server's limit of 256×256 (256×256 in portrait)",
    ]
    assert problems(task(style=["a", "b"], each=2, iterations=50), limits=limits) == [
        "2 style(s) × each 2 = 4 images; this server makes at most 3 per task file"
    ]
    assert expand_task(task(iterations=9), limits=limits)[0].request.size == (256, 256)
    big = TaskLimits(max_iterations=9000, max_resolution=(640, 480))
    job = expand_task(task(iterations=8000, resolution=[640, 480]), limits=big)[0]
    assert job.request.iterations == 8000 and job.request.size == (640, 480)
    with pytest.raises(ValueError, match="max_each must be a whole number"):
        TaskLimits(max_each=0)


PATH_CASES = [
    ({"out_file": ["../dog"]}, "out_file: '../dog' must be a file name without /"),
    ({"out_file": ["pets/dog"]}, "out_file: 'pets/dog' must be a file name without /"),
    ({"out_file": ["/tmp/dog"]}, "out_file: '/tmp/dog' must be a name under the output folder"),
    ({"out_file": [".."]}, "out_file: '..' must not contain .."),
    ({"out_file": [".dog"]}, "out_file: '.dog' has an empty, padded or hidden (.name) part"),
    ({"out_file": ["a\\dog"]}, "out_file: 'a\\\\dog' must not contain backslashes"),
    ({"out_file": [""]}, "out_file is empty"),
    ({"out_file": ["x" * 101]}, "out_file: '" + "x" * 101 + "' is too long"),
    ({"out_file": None}, "out_file is missing"),
    ({"out_folder": ["../../etc"]}, "out_folder: '../../etc' must not contain .."),
    ({"out_folder": ["a/../../b"]}, "out_folder: 'a/../../b' must not contain .."),
    ({"out_folder": ["/etc"]}, "out_folder: '/etc' must be a name under the output folder"),
    ({"out_folder": ["~/x"]}, "out_folder: '~/x' must be a name under the output folder"),
    ({"out_folder": ["C:/x"]}, "out_folder: 'C:/x' must be a name under the output folder"),
    ({"out_folder": ["a//b"]}, "out_folder: 'a//b' has an empty, padded or hidden"),
    ({"out_folder": ["a\\..\\b"]}, "out_folder: 'a\\\\..\\\\b' must not contain backslashes"),
    ({"init_image": ["../secret.png"]}, "init_image: '../secret.png' must not contain .."),
    ({"init_image": ["/etc/x.png"]}, "init_image: '/etc/x.png' must be a name under the output"),
    ({"image_prompts": ["a.png | ../b.png"]}, "image_prompts: '../b.png' must not contain .."),
]


@pytest.mark.parametrize(("fields", "message"), PATH_CASES)
def test_paths_stay_under_their_roots(fields: dict[str, Any], message: str) -> None:
    """out_folder/out_file are names under the output root; images under the task folder."""
    found = problems(task(**fields), images_root="tasks")
    assert any(p.startswith(message) for p in found), found


def test_names_and_images_that_are_fine(tmp_path: Path) -> None:
    """Sub-folders in out_folder; images relative to the task file's folder."""
    jobs = expand_task(
        task(out_folder=["alice/dogs"], init_image="start.png", image_prompts="a.png | b.png:0.5"),
        out_root=tmp_path,
        images_root=tmp_path / "tasks" / "alice",
    )
    request = jobs[0].request
    assert jobs[0].folder == tmp_path / "alice" / "dogs"
    assert request.init_image == str(tmp_path / "tasks" / "alice" / "start.png")
    assert request.image_prompts == (
        Prompt(str(tmp_path / "tasks" / "alice" / "a.png")),
        Prompt(str(tmp_path / "tasks" / "alice" / "b.png"), 0.5),
    )
    # An uploaded task file (no task folder) cannot refer to files on the server.
    assert problems(task(init_image="start.png")) == [
        "init_image: this task file cannot refer to image files"
    ]


def test_malformed_files_say_what_and_where() -> None:
    """JSON errors with line and column; wrong shapes and types name the field."""
    # A comma after the last item: one message, at the comma, on every Python (3.13's json
    # words it and places it differently from 3.11's and 3.12's).
    comma = "a comma after the last item (JSON allows none)"
    assert problems('{"text": ["a dog"],\n "each": [1],}') == [
        f"not valid JSON: line 2, column 13: {comma}"
    ]
    assert problems('{"text": ["a dog", "a cat" ,\n\t]}') == [
        f"not valid JSON: line 1, column 28: {comma}"
    ]
    assert problems('{"text": ["a dog"],') == [
        "not valid JSON: line 1, column 20: Expecting property name enclosed in double quotes"
    ]
    assert problems('{"text": ["a dog",, "a cat"]}') == [
        "not valid JSON: line 1, column 19: Expecting value"
    ]
    assert problems('["a dog"]') == [
        "a task file is one JSON object in curly braces {...}, not a list"
    ]
    found = problems(
        task(stlye=["Banksy"], colour=1, iterations=[100, 200], portrait="yes", each="3")
    )
    assert found[0].startswith('unknown field(s) "stlye" (did you mean "style"?), "colour"')
    assert "known fields: text, style, iterations" in found[0]
    assert found[1:] == [
        'iterations: several values in [100, 200]; give one, e.g. "iterations": [100] '
        "(only style lists several: write one task file per value)",
        'each: "3" is not a whole number',
        'portrait: "yes" is not true or false',
    ]
    assert problems(task(text=None))[0].startswith("text is missing")
    assert problems(task(text=[]))[0].startswith("text: no value in []")
    assert problems(task(style=[])) == ['style: the list is empty; write [""] for none']
    assert problems(task(text=["a dog | "])) == [
        "text: text part 2 of 2 is empty: 'a dog | ' (write parts as `a | b`)"
    ]


def test_doorways_options_and_their_checks() -> None:
    """Generate options by their CLI names; the Request's own checks still apply."""
    job = expand_task(
        task(
            lr=[0.025], cutn=2, augments=["affine", "noise"], mirror=[0.5],
            semantic_symmetry=[0.1], tone_symmetry=1, panorama="smooth", vqgan="tiny",
            clip=["ViT-B/16"], text=["heaven | hell"], anchors=[0.2, 0.8],
        ),
        defaults={"vqgan": "wikiart_16384", "clip": "tiny"},
    )[0]  # fmt: skip
    request = job.request
    assert (request.lr, request.cutn, request.augments) == (0.025, 2, ("affine", "noise"))
    assert (request.mirror, request.semantic_weight, request.tone_weight) == (0.5, 0.1, 1.0)
    assert (request.panorama, request.anchors) == ("smooth", (0.2, 0.8))
    assert (request.vqgan, request.clip) == ("tiny", "ViT-B/16")  # the file's over the runner's
    assert expand_task(task(), defaults={"vqgan": "tiny"})[0].request.vqgan == "tiny"

    assert problems(task(cutn=0)) == ["cutn must be between 1 and 256, not 0"]
    assert problems(task(semantic_symmetry=0.1)) == [
        "semantic symmetry compares mirrored pairs: set --mirror above 0"
    ]
    found = problems(task(vqgan="/models/evil.ckpt", clip="random:ViT-B/32"))
    assert found[0].startswith("vqgan: '/models/evil.ckpt' is not a VQGAN model of this server")
    assert found[1].startswith("clip: 'random:ViT-B/32' is not a CLIP model of this server")
    assert problems(task(vqgan="ViT-B/32"))[0].startswith("vqgan: 'ViT-B/32' is not a VQGAN")
    pair = expand_task(task(clip="ViT-B/32, tiny:0.5"), defaults={"vqgan": "tiny"})[0].request
    assert pair.clip == "ViT-B/32,tiny:0.5"  # a CLIP list, as on the command line
    found = problems(task(clip="tiny,/models/evil.pt:0.5"))
    assert found[0].startswith("clip: '/models/evil.pt' is not a CLIP model of this server")
    assert problems(task(clip="tiny,tiny")) == [
        "clip: CLIP tiny is listed twice in 'tiny,tiny': give each model once, with one weight"
    ]
    assert problems(task(device="cuda:0"))[0].startswith('unknown field(s) "device"')


def test_entrance_task_files() -> None:
    """realms (or a preset) with door/modifiers give the entrance prompts and defaults."""
    jobs = expand_task(
        task(text=None, realms=["heaven | hell"], door="gate", style=["", "James Gurney"],
             modifiers=["", "wild"], seed=3),
    )  # fmt: skip
    assert [render for render in (j.request.prompts for j in jobs)] == [
        (Prompt("gate to heaven"), Prompt("gate to hell, wild")),
        (
            Prompt("gate to heaven in the style of James Gurney"),
            Prompt("gate to hell, wild in the style of James Gurney"),
        ),
    ]
    request = jobs[0].request
    assert (request.lr, request.panorama, request.mirror, request.tone_weight) == (
        0.025, "smooth", 0.5, 1.0
    )  # fmt: skip
    assert request.size == (450, 300) and request.iterations == 500 and request.seed == 3
    preset = expand_task(task(text=None, preset="bodhi-samsara"))[0].request
    assert len(preset.prompts) == 2 and preset.prompts[0].text.startswith("entrance to ")

    assert "give text or an entrance (realms or preset), not both" in problems(
        task(realms="heaven | hell")
    )
    assert problems(task(door="gate")) == [
        "door belongs to an entrance: give realms (or a preset), not text"
    ]
    assert problems(task(text=None, realms="heaven")) == [
        "an entrance needs two or more realms separated by `|`, got 'heaven'"
    ]
    assert problems(task(text=None, preset="nowhere"))[0].startswith("unknown preset 'nowhere'")


def test_all_problems_are_reported_together() -> None:
    """One refusal lists everything that is wrong, so one fix-up round is enough."""
    found = problems(task(iterations=9000, each=30, out_folder="/x", text=['say "hi"']))
    assert len(found) == 4


def test_shipped_sample_task_files_expand() -> None:
    """data/tasks/ holds templates (sample.txt, and task_sample.txt with an entrance and
    Doorways fields) that run as they are, once copied to another name."""
    folder = Path(__file__).resolve().parents[2] / "data" / "tasks"
    samples = sorted(folder.glob("*.txt"))
    assert {p.name for p in samples} == {"sample.txt", "task_sample.txt"}
    for path in samples:
        jobs = expand_task(path.read_text(encoding="utf-8"), images_root=folder)
        assert jobs, path


def test_parse_task_keeps_unknown_values_for_the_checks() -> None:
    """parse_task only reads the JSON object (a byte-order mark is fine)."""
    assert parse_task('\ufeff{"text": ["a"]}') == {"text": ["a"]}


def test_config_file(tmp_path: Path) -> None:
    """[tasks] in a TOML file sets the output root and the limits; typos are errors."""
    assert load_config(None) == TasksConfig()
    path = tmp_path / "doorways.toml"
    path.write_text(
        '[tasks]\noutput_root = "/srv/out"\nmax_iterations = 800\nmax_resolution = [512, 512]\n'
        "[discord]\ntoken = 'elsewhere'\n"
    )
    config = load_config(path)
    assert config.output_root == Path("/srv/out")
    assert config.limits == TaskLimits(max_iterations=800, max_resolution=(512, 512))
    path.write_text("[tasks]\nmax_iteration = 800\n")
    with pytest.raises(ValueError, match=r"unknown setting.*tasks.max_iteration .known"):
        load_config(path)
    path.write_text("[tasks]\nmax_each = -1\n")
    with pytest.raises(ValueError, match="max_each must be a whole number"):
        load_config(path)
    with pytest.raises(ValueError, match="config file not found"):
        load_config(tmp_path / "missing.toml")
