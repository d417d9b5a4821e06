"""The `doorways` command line: generate, entrance, params, presets, models."""

import argparse
import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from engine import __version__
from engine.clips import EXAMPLE
from engine.entrance import (
    DEFAULT_STYLE,
    DOOR_WORDS,
    ENTRANCE_DEFAULTS,
    entrance_request,
    load_presets,
)
from engine.request import (
    COMPILE_MODES,
    PRECISIONS,
    Request,
    RequestParser,
    UsageError,
    add_request_arguments,
    request_from_args,
)
from engine.tasks import add_tasks_arguments, parse_devices

if TYPE_CHECKING:
    from torch import Tensor

    from engine.loop import Finished
    from engine.timelapse import Timelapse

TINY_NOTE = (
    "note: tiny models are untrained stand-ins (for tests and offline smoke runs): "
    "the picture will look like noise. Real models: `{doorways} models download NAME`."
)
OFFLINE_HINT = (
    "; to try it offline, without downloading: `--vqgan tiny --clip tiny` (untrained "
    "stand-ins: the picture looks like noise)"
)
OTHER_MODELS = """\
Also, for --vqgan and --clip, without a download:
  tiny          untrained stand-ins built here with the real classes, for offline tries
                and tests (pictures look like noise): --vqgan tiny --clip tiny
  random:NAME   the full-size architecture of registry model NAME with random weights,
                for measuring speed and memory (what bench uses by default)
  a path        a VQGAN checkpoint X.ckpt with X.yaml beside it, or a CLIP .pt file
Download: `{doorways} models download NAME`."""
COMPILE_NOTE = (
    "note: --compile: the first iteration compiles the decoder and CLIP for this size, "
    "which takes a minute or more; the rest are faster."
)


def build_parser() -> RequestParser:
    parser = RequestParser(
        prog="doorways",
        description="Doorways: VQGAN+CLIP juxtapositions — two realms in one picture.",
    )
    parser.add_argument("--version", action="version", version=f"doorways {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    generate = commands.add_parser(
        "generate", help="paint prompts: `doorways generate \"a | b:0.5\"`",
        description="Paint with VQGAN+CLIP. Prompts are parts split by `|`, each `text` or "
        "`text:weight` (negative weights push away).",
    )  # fmt: skip
    add_request_arguments(generate)

    entrance = commands.add_parser(
        "entrance", help="paint an entrance juxtaposition: `doorways entrance \"heaven | hell\"`",
        description="Realms become prompts the way the Doorways post wrote them: "
        "`entrance to heaven by James Gurney | entrance to hell by James Gurney`, with the "
        "post's symmetric-work defaults (change any with the options below). Places are named "
        "as they are; other subjects become `the <subject> realm`; a subject starting with "
        "`the` is used as typed.",
    )  # fmt: skip
    entrance.add_argument("realms", nargs="?", metavar="REALMS", help="`left | right [| more]`")
    entrance.add_argument("--preset", help="a juxtaposition from `doorways presets`")
    entrance.add_argument(
        "--door", default="entrance",
        help=f"the door word, e.g. {', '.join(DOOR_WORDS)} (default: entrance)",
    )  # fmt: skip
    entrance.add_argument(
        "--style", default=DEFAULT_STYLE,
        help=f"style suffix of every prompt, '' for none (default: {DEFAULT_STYLE})",
    )  # fmt: skip
    entrance.add_argument(
        "--modifiers", nargs="+", default=None, metavar="TEXT",
        help="words for each realm, left to right, e.g. '' 'wild' or 'secluded, empty, silent'",
    )  # fmt: skip
    add_request_arguments(entrance, positional=False)
    _show_defaults(entrance, ENTRANCE_DEFAULTS)

    bench = commands.add_parser(
        "bench", help="measure seconds per iteration and peak memory",
        description="Run the real loop and print seconds per iteration (median after warm-up), "
        "peak RAM and VRAM: one JSON line on stdout, a table on stderr. Models may be "
        "random:NAME (full-size architecture, random weights: no download needed).",
    )  # fmt: skip
    bench.add_argument("--vqgan", default="random:vqgan_imagenet_f16_16384", metavar="NAME")
    bench.add_argument(
        "--clip", default="random:ViT-B/32", metavar="MODELS",
        help=f"CLIP, or several as {EXAMPLE} (as generate's --clip)",
    )  # fmt: skip
    bench.add_argument("--size", nargs=2, type=int, default=[448, 304], metavar=("W", "H"))
    bench.add_argument("--cutn", type=int, default=32, metavar="N")
    bench.add_argument("--iterations", type=int, default=5, metavar="N", help="timed iterations")
    bench.add_argument("--warmup", type=int, default=1, metavar="N", help="untimed first ones")
    bench.add_argument("--device", default="auto", metavar="D")
    bench.add_argument(
        "--count", type=int, default=1, metavar="N",
        help="paint N pictures as one batch, and compare seconds per picture with one at a time",
    )  # fmt: skip
    bench.add_argument(
        "--rounds", type=int, default=1, metavar="R",
        help="with --count: alternate one picture alone and the batch R times and compare the "
        "fastest (a busy machine only adds time)",
    )  # fmt: skip
    bench.add_argument("--precision", default="auto", choices=PRECISIONS)
    bench.add_argument("--compile", default="off", choices=COMPILE_MODES)
    bench.add_argument(
        "--jobs", type=int, metavar="N",
        help="measure throughput instead: paint N whole jobs (--iterations each) through one "
        "worker process per --devices and report jobs per hour",
    )  # fmt: skip
    bench.add_argument(
        "--devices", type=parse_devices, default=(), metavar="LIST",
        help="with --jobs: one worker per device, e.g. cpu,cpu or cuda:0,cuda:1 or all "
        "(default: one on --device)",
    )  # fmt: skip
    bench.add_argument("--threads", type=int, metavar="N", help="torch CPU threads per worker")

    gpu_report = commands.add_parser(
        "gpu-report", help="test and measure Doorways on this machine's GPU (Markdown report)",
        description="On a CUDA GPU: run the GPU tests (from a checkout), measure speed and peak "
        "VRAM of the full-size models at several sizes in fp32, bf16 and with --compile, check "
        "that the same request repeats, and print it all as Markdown. Without CUDA: print the "
        "plan.",
    )  # fmt: skip
    from engine.gpu_report import add_arguments as add_gpu_report_arguments

    add_gpu_report_arguments(gpu_report)

    quality = commands.add_parser(
        "quality", help="measure what each Doorways technique does, in a toy world (Markdown)",
        description="Train a toy CLIP and VQGAN on a world of coloured shapes (about half a "
        "minute, kept for later runs), paint in it with each technique off and on, several seeds "
        "each, and print how the pictures differ as a Markdown table (docs/quality.md).",
    )  # fmt: skip
    quality.add_argument(
        "--seeds", type=int, default=3, metavar="N", help="seeds per row, 1-20 (default 3)"
    )
    quality.add_argument("--device", default="cpu", metavar="D", help="cpu (default) or cuda[:N]")

    params = commands.add_parser("params", help="print the call string of a Doorways PNG")
    params.add_argument("image", metavar="IMAGE.png")
    params.add_argument("--json", action="store_true", help="print the request as JSON")

    commands.add_parser("presets", help="list the gallery of juxtapositions")

    models = commands.add_parser("models", help="list, download or locate models")
    model_commands = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    model_commands.add_parser("list", help="registry models and whether they are downloaded")
    download = model_commands.add_parser("download", help="download a model (resumes, checks)")
    download.add_argument("names", nargs="+", metavar="NAME")
    path = model_commands.add_parser("path", help="print where a model's files are kept")
    path.add_argument("name", metavar="NAME")

    tasks = commands.add_parser(
        "tasks", help="run folders of runvqgan-style JSON task files (overnight)",
        description="Run task files: FOLDER/*.txt and *.json, FOLDER/<user>/task_*.txt.",
    )  # fmt: skip
    add_tasks_arguments(tasks)
    return parser


def _show_defaults(parser: argparse.ArgumentParser, defaults: Request) -> None:
    """Make --help show the entrance defaults where they differ from generate's."""
    for action in parser._actions:
        plain = Request.__dataclass_fields__.get(action.dest)
        if plain is None or not action.help:
            continue
        value = getattr(defaults, action.dest)
        if value != plain.default:
            shown = " ".join(map(str, value)) if isinstance(value, tuple) else str(value)
            action.help = action.help.split(" (default:")[0] + f" (entrance default: {shown})"


def doorways_command() -> str:
    """How to run `doorways` from a new shell: plain `doorways` where the PATH finds this
    program for good, else its full path (a virtual environment's bin/ is on the PATH only
    in the shell that activated it)."""
    script = Path(sys.argv[0])
    launcher = script if script.name == "doorways" else Path(sys.executable).with_name("doorways")
    if not launcher.is_file():
        return f"{shlex.quote(sys.executable)} -m engine.cli"
    launcher = launcher.absolute()
    found = shutil.which("doorways")
    venv = os.environ.get("VIRTUAL_ENV")
    from_venv = venv is not None and launcher.resolve().is_relative_to(Path(venv).resolve())
    if found and Path(found).resolve() == launcher.resolve() and not from_venv:
        return "doorways"
    home = Path.home()
    if launcher.is_relative_to(home):
        rest = launcher.relative_to(home).as_posix()
        if shlex.quote(rest) == rest:
            return f"~/{rest}"
    return shlex.quote(str(launcher))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "entrance" and args.realms is None and args.preset is None:
            entrance = _subcommand(parser, "entrance")
            message = "give realms (`heaven | hell`) or --preset NAME"
            hint = "`doorways entrance --help` explains each option"
            raise UsageError(message, entrance.format_usage(), hint)
        return _run(args)
    except UsageError as error:
        print(error.usage, end="", file=sys.stderr)
        print(f"doorways: error: {error}\n({error.hint})", file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"doorways: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("doorways: cancelled", file=sys.stderr)
        return 130
    except Exception as error:
        # Imported only by commands that need models; if it isn't loaded, this isn't its error.
        registry = sys.modules.get("engine.registry")
        if registry is None or not isinstance(error, registry.ModelError):
            raise
        message = str(error).replace("`doorways ", f"`{doorways_command()} ")
        hint = OFFLINE_HINT if isinstance(error, registry.ModelMissing) else ""
        print(f"doorways: error: {message}{hint}", file=sys.stderr)
        return 2


def _subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return commands.choices[name]


def _run(args: argparse.Namespace) -> int:
    if args.command == "generate":
        return _generate(request_from_args(args))
    if args.command == "entrance":
        modifiers = args.modifiers
        base = entrance_request(
            args.realms, preset=args.preset, door=args.door, style=args.style, modifiers=modifiers
        )
        return _generate(request_from_args(args, prompts=base.prompts, base=base))
    if args.command == "params":
        from engine.outputs import read_request

        request = read_request(Path(args.image))
        print(request.to_json() if args.json else request.to_call_string())
        return 0
    if args.command == "bench":
        from engine.bench import bench, bench_request, print_report, throughput

        if args.rounds < 1:
            raise ValueError(f"--rounds must be 1 or more, not {args.rounds}")
        iterations = args.iterations if args.jobs else args.warmup + args.iterations
        request = bench_request(
            args.vqgan, args.clip, tuple(args.size), args.cutn, iterations, args.device, args.count
        ).replace(precision=args.precision, compile=args.compile)
        _warn_if_gpu_unused(args.device)
        if args.jobs:
            from engine.worker.pool import resolve_devices

            devices = resolve_devices(args.devices, args.device)
            print_report(throughput(request, args.jobs, devices, args.threads))
        else:
            print_report(bench(request, args.warmup, args.rounds))
        return 0
    if args.command == "gpu-report":
        from engine import gpu_report

        return gpu_report.main(args)
    if args.command == "quality":
        from engine import quality

        return quality.main(args)
    if args.command == "tasks":
        return _tasks(args)
    if args.command == "presets":
        presets = load_presets().values()
        width = max(len(preset.name) for preset in presets)
        for preset in presets:
            print(f"{preset.name:{width}}  {preset.title}  ({preset.group})")
        usage = f"`{doorways_command()} entrance --preset NAME`"
        print(f"\nPaint one: {usage} (entrance's options apply)")
        return 0
    return _models(args)


def _warn_if_gpu_unused(device: str) -> None:
    """`--device auto` on the CPU of a machine whose NVIDIA GPU torch cannot use: say so."""
    from engine.driver import cpu_fallback_warning

    warning = cpu_fallback_warning(device)
    if warning is not None:
        print(f"doorways: {warning}", file=sys.stderr)


def _tasks(args: argparse.Namespace) -> int:
    from engine import tasks

    return tasks.main(args)


def _models(args: argparse.Namespace) -> int:
    from engine import registry

    if args.models_command == "list":
        print(f"{'NAME':28} {'KIND':6} {'SIZE':>9}  STATUS")
        for row in registry.list_models():
            size = f"{row['size_bytes'] / 2**20:,.0f} MiB" if row["size_bytes"] else "?"
            status = f"downloaded: {row['path']}" if row["downloaded"] else "not downloaded"
            if row["unavailable"] and not row["downloaded"]:
                status = f"UNAVAILABLE: {row['unavailable']}"
            print(f"{row['name']:28} {row['kind']:6} {size:>9}  {status}")
        print("\n" + OTHER_MODELS.format(doorways=doorways_command()))
        return 0
    if args.models_command == "download":
        for name in args.names:
            for path in registry.download(name):
                print(f"{name}: {path}")
        return 0
    for path in registry.model_paths(args.name):
        print(path)
    return 0


def _generate(request: Request) -> int:
    """Run a request in this process with a progress bar; save the PNG and say where."""
    from tqdm import tqdm

    from engine import models
    from engine.loop import Finished, generate
    from engine.outputs import check_writable
    from engine.timelapse import Timelapse

    for note in request.check_inputs():
        print(f"note: {note}", file=sys.stderr)
    output = Path(request.output).expanduser()
    check_writable(output.with_suffix(".png"))  # before painting, not after
    frames = None
    if request.timelapse is not None:
        check_writable(Path(request.timelapse).expanduser())
        frames = Timelapse()
    device = models.resolve_device(request.device)
    _warn_if_gpu_unused(request.device)
    vqgan = models.load_vqgan(request.vqgan, device)
    clips = models.load_clips(request.clips, device)
    if "tiny" in (request.vqgan, *(spec.name for spec in request.clips)):
        print(TINY_NOTE.format(doorways=doorways_command()), file=sys.stderr)
    if request.compile != "off":
        print(COMPILE_NOTE, file=sys.stderr)
    previews = _Previews(output.with_name(f"{output.stem}.preview.png"))
    bar = tqdm(total=request.iterations, unit="it", file=sys.stderr, dynamic_ncols=True)
    with bar:
        for event in generate(request, vqgan, clips):
            if isinstance(event, Finished):
                result = event
                break
            bar.update(1)
            # Reading the loss waits for the device, so only now and then.
            if event.iteration % 10 == 0 or event.iteration == event.total:
                bar.set_postfix(loss=f"{event.loss_values()['total']:.4f}", refresh=False)
            if event.image is not None:
                previews.save(event.image)
            if frames is not None and event.frame is not None:
                frames.add(event.frame)
    try:
        saved = _save_pictures(result, output, str(device))
    except OSError as error:
        print(f"doorways: error: {error}", file=sys.stderr)
        return 1
    for path, elsewhere, own in saved:
        if elsewhere is not None:
            print(f"doorways: warning: {elsewhere}", file=sys.stderr)
        what = f"seed {own.seed}"
        if own.count > 1:
            what = "the grid" if own.index is None else f"picture {own.index}, {what}"
        print(f"saved {path} in {result.seconds:.1f} s ({what})", file=sys.stderr)
        call = own.recipe().to_call_string().removeprefix("doorways")
        print(f"reproduce: {doorways_command()}{call}", file=sys.stderr)
    if frames is not None and request.timelapse is not None:
        _save_timelapse(frames, result.image, Path(request.timelapse).expanduser())
    return 0


def _save_pictures(
    result: "Finished", output: Path, device: str
) -> list[tuple[Path, str | None, Request]]:
    """Write the picture at `output`; a batch's pictures at `output-1.png`, `output-2.png`, …
    each with its own call string, and their grid at `output-grid.png` with the batch's.
    Returns (where, why elsewhere, whose request) for each file."""
    from engine.outputs import picture_path, png_bytes, write_png_safely

    files = [(result.image, result.request, output)]
    if len(result.images) > 1:
        files = [
            (image, request, picture_path(output, index))
            for index, (image, request) in enumerate(
                zip(result.images, result.requests, strict=True), start=1
            )
        ] + [(result.image, result.request, picture_path(output, "grid"))]
    saved = []
    for image, request, path in files:
        png = png_bytes(image, request, device)
        saved.append((*write_png_safely(png, request.recipe().to_call_string(), path), request))
    return saved


def _save_timelapse(frames: "Timelapse", final: "Tensor", path: Path) -> None:
    """Write the GIF (a taken name gets _1, _2, …); a failure is a warning: the picture is
    what matters, and it is saved already."""
    from engine.outputs import claim_path

    try:
        gif = frames.finish(final)
        target = claim_path(path)
        target.write_bytes(gif)
    except (OSError, ValueError) as error:
        print(f"doorways: warning: no timelapse: {error}", file=sys.stderr)
        return
    print(f"timelapse {target} ({len(frames.frames)} frames)", file=sys.stderr)


class _Previews:
    """The preview file, rewritten as the painting goes; a failure to write it is said once
    and does not stop the painting."""

    def __init__(self, path: Path) -> None:
        self.path, self.broken = path, False

    def save(self, image: "Tensor") -> None:
        from engine.outputs import save_preview

        if self.broken:
            return
        try:
            save_preview(image, self.path)
        except OSError as error:
            self.broken = True
            print(
                f"doorways: warning: cannot write the preview {self.path} "
                f"({error.strerror or error}); painting goes on without previews",
                file=sys.stderr,
            )


if __name__ == "__main__":
    sys.exit(main())
