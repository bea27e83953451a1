"""The ``brainprobe`` command. Thin: it parses arguments and calls the package."""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]


def _load_images(source: str, size: int | None):
    from .stimuli import open_stimuli

    return open_stimuli(source, size=size)


def _load_cli_model(name: str, weights: str, device: str | None, init: str = "default"):
    from .models import load_model

    return load_model(name, None if weights == "random" else weights, init=init, device=device)


# the network every image subcommand uses unless --model says otherwise: its ImageNet weights ship
# inside the `demo` extra, so the defaults run offline (AlexNet's need `brainprobe fetch-weights`)
DEFAULT_MODEL = "efficientnet_lite0"
MODEL_HELP = ("network name (brainprobe info lists them; alexnet, vgg16, ... need `brainprobe fetch-weights NAME` "
              "once, with network access)")


def _cmd_info(args) -> int:
    import numpy
    import torch
    import torchvision

    from . import __version__
    from .models import architecture_notes, available_models, find_local_weights

    print(f"brainprobe   {__version__}")
    print(f"python       {platform.python_version()}")
    print(f"numpy        {numpy.__version__}")
    print(f"torch        {torch.__version__}")
    print(f"torchvision  {torchvision.__version__}")
    if torch.cuda.is_available():
        print(f"device       cuda ({torch.cuda.get_device_name(0)})")
    else:
        print(f"device       cpu ({torch.get_num_threads()} threads)")
    print(f"torch cache  {torch.hub.get_dir()}")
    print("ImageNet weights found locally:")
    for name in available_models():
        try:
            path = find_local_weights(name)
        except ImportError:
            path = None
        print(f"  {name:<20} {path if path else '-- (brainprobe fetch-weights ' + name + ')'}")
    for name in available_models():
        if architecture_notes(name):
            print(f"note: {name}: {architecture_notes(name)}")
    return 0


def _cmd_extract(args) -> int:
    from .models import extract
    from .models._store import check_output_folder

    out = Path(args.out)
    stream = out.suffix.lower() != ".npz"  # a folder: one .npy per layer, written batch by batch
    if stream:
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out}: is a file; expected a .npz file name or a folder (one .npy per layer)")
        if _occupied(out, args.overwrite, args.images):
            return 2
        check_output_folder(out, args.overwrite)  # a folder brainprobe did not write is refused even with --overwrite
    else:
        if out.is_dir():
            raise ValueError(f"--out {out}: is a folder; expected a .npz file name")
        if out.exists() and not args.overwrite:
            print(f"error: {out} exists; pass --overwrite to replace it", file=sys.stderr)
            return 2
        if out.exists() and not _written_by_extract(out):
            print(f"error: --out {out}: exists and is not activations written by brainprobe (no image_ids, layers "
                  f"and model_name arrays); it is never replaced, even with --overwrite: move it away or choose "
                  f"another name", file=sys.stderr)
            return 2
    stimuli = _load_images(args.images, args.size)
    model = _load_cli_model(args.model, args.weights, args.device)
    layers = args.layers.split(",") if args.layers else None
    activations = extract(model, stimuli, layers, batch_size=args.batch_size, progress=True,
                          out=out if stream else None, overwrite=args.overwrite)
    if not stream:
        activations.save(out, overwrite=True)  # checked above: it exists only with --overwrite
    print(activations.summary().to_string(index=False))
    print(f"wrote {out} ({len(stimuli)} images, {len(activations)} layers, model {model.name}, weights {model.weights_source})")
    return 0


def _written_by_extract(path: Path) -> bool:
    """Whether ``path`` is an ``.npz`` in `Activations.save`'s layout (read without pickles)."""
    import zipfile

    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as arrays:
            return {"image_ids", "layers", "model_name"} <= set(arrays.files)
    except (OSError, ValueError, zipfile.BadZipFile):
        return False


def _occupied(out: Path, overwrite: bool, images: str | None = None) -> bool:
    """True (after saying so) when ``out`` holds files and ``--overwrite`` was not given.

    An ``out`` that is or contains the ``--images`` source is an error (ValueError)."""
    from ._files import check_outside

    check_outside(out, {"--images": images}, {"--images": images})
    if out.exists() and any(out.iterdir()) and not overwrite:
        print(f"error: {out} exists and is not empty; pass --overwrite to replace it", file=sys.stderr)
        return True
    return False


def _cmd_adversarial(args) -> int:
    from .adversarial import paper_design

    out = Path(args.out)
    if _occupied(out, args.overwrite, args.images):
        return 2
    model = _load_cli_model(args.model, args.weights, args.device, args.init)
    regular = _load_images(args.images, args.size or model.input_size)
    print(f"{len(regular)} RE images; network {model.name} (weights: {model.weights_source})")
    options = {"max_iter": args.max_iter, "batch_size": args.batch_size, "device": args.device}
    design = paper_design(model, regular, seed=args.seed, threshold=args.threshold,
                          an_options=options, ai_options=options, progress=True)
    design.save(out, overwrite=args.overwrite)
    made = design.table[design.table["kind"] != "RE"]
    summary = made.groupby("kind").agg(images=("image_id", "size"), succeeded=("success", "sum"),
                                       mean_p_target=("p_target", "mean"), mean_iterations=("n_iter", "mean"),
                                       mean_psnr=("psnr", "mean"))
    print(summary.round(3).to_string())
    print(f"wrote {out} (stimuli.csv, stimuli.npz, images/RE, AN, AI/*.png; ids RE/<name>, AN/<name>, AI/<name>)")
    return 0 if made["success"].all() else 1


_STEPS_HELP = {
    "invert": "steps of the first phase; a second phase of 50 steps at a tenth of the rate follows (paper 004), "
              "so 300 runs 350 steps",
    "metamer": "Adam steps at most; with the default --stop-fidelity most images stop well before",
    "texture": "L-BFGS steps (paper 003 ran a few hundred)",
    "distortions": "LOBPCG iterations for each end of the spectrum",
}


def _synth_result(args, model, stimuli) -> tuple:
    """Run one synthesis method; returns (images tensor, the synthesis object's ``table_``)."""
    from . import synth

    images = stimuli.images if stimuli is not None else None
    ids = list(stimuli.image_ids) if stimuli is not None else []
    if args.method == "invert":
        run = synth.Inversion(model, images, args.layer, C=args.C)
    elif args.method == "caricature":
        run = synth.Caricature(model, images, args.layer)
    elif args.method == "maximize":
        if args.unit is None and args.channel is None:
            raise ValueError("synth maximize: give --unit or --channel")
        run = synth.ActivationMaximization(model, args.layer, unit=args.unit, channel=args.channel,
                                           n_images=args.n_images, jitter_amount=args.jitter)
        ids = [f"restart{i}" for i in range(args.n_images)]
    elif args.method == "metamer":
        run = synth.Metamer(model, images, args.layer, linear_gradient=args.linear_gradient, lr=args.lr,
                            stop_fidelity=args.stop_fidelity or None)
    elif args.method == "texture":
        run = synth.TextureSynthesis(model, images, args.layer.split(","))
    else:
        for image_id in ids:
            print(f"distortions of {image_id}: LOBPCG, at most {args.max_iter} iterations per end of the spectrum", file=sys.stderr)
        run = synth.EigendistortionSynthesis(model, images, args.layer, k=1)
    run.synthesize(args.max_iter, progress=True)
    table = run.table_
    source = table["source"] if "source" in table else table["image"]
    table.insert(0, "source_id", [ids[i] for i in source])
    if args.method != "distortions":
        return run.images, table
    # each distortion shown as its source image plus the unit-norm distortion scaled to a visible amplitude
    pictures = [(images[i] + args.amplitude * d / d.abs().max()).clamp(0, 1) for i, d in zip(source, run.images, strict=True)]
    return __import__("torch").stack(pictures), table.assign(amplitude=args.amplitude)


def _cmd_synth(args) -> int:
    from .stimuli import StimulusSet

    out = Path(args.out)
    if _occupied(out, args.overwrite, args.images):
        return 2
    model = _load_cli_model(args.model, args.weights, args.device, args.init)
    stimuli = _load_images(args.images, args.size or model.input_size) if args.images else None
    if stimuli is None and args.method != "maximize":
        raise ValueError(f"synth {args.method}: --images is required")
    images, table = _synth_result(args, model, stimuli)
    table.insert(0, "image_id", [f"{args.method}_{i:03d}_{s}" for i, s in enumerate(table["source_id"])])
    table.insert(1, "kind", args.method)
    StimulusSet(images, table.assign(layer=args.layer, model=model.name)).save(out, overwrite=args.overwrite)
    print(table.to_string(index=False))
    print(f"wrote {out}")
    return 0


def _cmd_fetch_weights(args) -> int:
    from .models import fetch_weights

    for name in args.names:
        print(f"{name}: {fetch_weights(name)}")
    return 0


def _run_study(study) -> int:
    result = study.run()
    figures = sorted({p.with_suffix("").name for p in result.figures})
    print(f"\n{len(result.tables)} tables in {result.output / 'results'}, {len(figures)} figures in "
          f"{result.output / 'figures'}; {_steps_summary(result.log)}")
    if study.progress is False:  # otherwise the study has just said where its report is
        print(f"report: {result.report}")
    return 0


def _steps_summary(log) -> str:
    """How many steps ran and how many came from the cache, as the log says (no claim it does not hold)."""
    computed = int((log["status"] == "computed").sum())
    cached = int((log["status"] == "cached").sum())
    if cached == 0:
        return f"{computed} steps computed, none from the cache"
    if computed == 0:
        return f"all {cached} steps from the cache"
    return f"{computed} steps computed, {cached} from the cache"


def _cmd_run(args) -> int:
    from .pipeline import Study

    return _run_study(Study(args.config, overwrite=args.overwrite, n_jobs=args.n_jobs, scheduler=args.scheduler,
                            progress=False if args.quiet else None))


def _cmd_demo(args) -> int:
    from .pipeline import Study, demo_config

    sections = {"stimuli": {}, "subjects": {"simulate": args.subjects}, "network": {}}
    if args.n_images is not None:
        sections["stimuli"]["n_images"] = args.n_images
    if args.max_iter is not None:
        sections["stimuli"]["max_iter"] = args.max_iter
    if args.device:
        sections["network"]["device"] = args.device
    if args.n_perm is not None:
        for section in ("rsa", "encoding"):
            sections[section] = {"n_perm": args.n_perm, "n_boot": args.n_perm}
    config = demo_config(Path(args.output).resolve(), **sections)
    print("brainprobe demo: sample photos -> AN/AI images on EfficientNet-Lite0 (ImageNet weights) -> "
          f"{args.subjects} simulated subjects on fs_LR 32k (MMP1.0 ROIs) -> selection, RSA, searchlight, "
          "encoding, best layer -> report")
    return _run_study(Study(config, overwrite=args.overwrite, n_jobs=args.n_jobs, progress=False if args.quiet else None))


class _DefaultsFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless its text already says it (flags have none)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "(default" in text or action.required or action.nargs == 0 or action.default in (None, argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


def _add_command(commands, name: str, text: str) -> argparse.ArgumentParser:
    return commands.add_parser(name, help=text, description=text, formatter_class=_DefaultsFormatter)


# --max-iter when not given: budgets that finish on a CPU in about a minute for a few 224 px images
SYNTH_STEPS = {"invert": 300, "maximize": 300, "caricature": 300, "metamer": 2000, "texture": 100, "distortions": 200}
METAMER_STOP_FIDELITY = 0.95


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="brainprobe", formatter_class=_DefaultsFormatter,
        description="Compare CNN and human visual cortex representations, and synthesize the images that tell them apart.",
    )
    parser.add_argument("--version", action="version", version=f"brainprobe {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    info = _add_command(commands, "info", "versions, device, and which network weights are on this machine")
    info.set_defaults(run=_cmd_info)

    extract = _add_command(commands, "extract", "extract layer activations for a folder of images")
    extract.add_argument("--images", required=True, help="image folder, CSV manifest, or a saved StimulusSet folder")
    extract.add_argument("--out", required=True, help="output .npz (one (n_images, n_units) array per layer + image_ids, in memory first), or a folder: "
                         "each batch streamed to one .npy per layer + activations.json (for sets too large for memory; "
                         "reopen with Activations.load)")
    extract.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    extract.add_argument("--weights", default="imagenet", help="'imagenet' (local files only), 'random', or a state-dict path")
    extract.add_argument("--layers", help="comma-separated layer names (default: all named layers)")
    extract.add_argument("--size", type=_positive_int, default=224, help="resize shorter side and centre-crop to this size")
    extract.add_argument("--batch-size", type=_positive_int, default=32, help="images per forward pass")
    extract.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    extract.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    extract.set_defaults(run=_cmd_extract)

    adversarial = _add_command(commands, "adversarial", "make an AN and an AI image for every RE image (paper 001)")
    adversarial.add_argument("--images", required=True, help="RE image folder, CSV manifest, or saved StimulusSet folder")
    adversarial.add_argument("--out", required=True, help="output folder for the RE + AN + AI StimulusSet")
    adversarial.add_argument("--model", default=DEFAULT_MODEL, help="network the images are made against; " + MODEL_HELP)
    adversarial.add_argument("--weights", default="imagenet", help="'imagenet' (local files only), 'random', or a state-dict path")
    adversarial.add_argument("--init", default="default", choices=["default", "kaiming"], help="initialization for --weights random")
    adversarial.add_argument("--size", type=_positive_int, default=None, help="resize RE images to this square size (default: the network's input size)")
    adversarial.add_argument("--threshold", type=float, default=0.99, help="target probability each image must reach")
    adversarial.add_argument("--max-iter", type=_positive_int, default=1000, help="gradient steps per image at most")
    adversarial.add_argument("--batch-size", type=_positive_int, default=None, help="images optimized together (default 64 on CUDA, 8 on CPU)")
    adversarial.add_argument("--seed", type=int, default=0, help="seed of the AI target classes")
    adversarial.add_argument("--device", help="cpu, cuda ... (default: cuda when available)")
    adversarial.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    adversarial.set_defaults(run=_cmd_adversarial)

    synth = _add_command(commands, "synth", "synthesize images: inversions, metamers, textures, distortions ...")
    methods = synth.add_subparsers(dest="method", metavar="METHOD", required=True)
    method_help = {
        "invert": "reconstruct images from one layer (paper 004)",
        "maximize": "images that excite a unit or channel (paper 004)",
        "caricature": "exaggerate what a layer sees in images (paper 004)",
        "metamer": "images matching a layer's activations from noise (paper 000)",
        "texture": "Gatys texture synthesis matching Gram matrices (paper 003)",
        "distortions": "most and least visible distortions of a layer at each image (paper 002)",
    }
    for name, text in method_help.items():
        method = _add_command(methods, name, text)
        method.add_argument("--images", required=name != "maximize", help="image folder, CSV manifest or StimulusSet folder"
                            + (" (default: none; the images start from noise)" if name == "maximize" else ""))
        method.add_argument("--out", required=True, help="output folder (images + stimuli.csv with the measures)")
        method.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
        method.add_argument("--weights", default="imagenet", help="'imagenet' (local files only), 'random', or a state-dict path")
        method.add_argument("--init", default="default", choices=["default", "kaiming"], help="initialization for --weights random")
        method.add_argument("--layer", required=True, help="layer name" + (" (comma-separated layers)" if name == "texture" else ""))
        method.add_argument("--size", type=_positive_int, default=None, help="resize images to this square size (default: the network's input size)")
        method.add_argument("--max-iter", type=_positive_int, default=SYNTH_STEPS[name], help=_STEPS_HELP.get(name, "optimization steps"))
        method.add_argument("--device", help="cpu, cuda ... (default: cuda when available)")
        method.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
        if name == "invert":
            method.add_argument("--C", type=float, default=300.0, help="weight of the data term (paper 004: 1, 20, 100, 300)")
        if name == "maximize":
            method.add_argument("--unit", type=int, help="flat index of the unit (default: none; give --unit or --channel)")
            method.add_argument("--channel", type=int, help="channel of a convolutional layer (default: none)")
            method.add_argument("--n-images", type=_positive_int, default=1, help="images from different random starts")
            method.add_argument("--jitter", type=int, default=None, help="jitter amount T (default, as paper 004: a quarter of the stride)")
        if name == "metamer":
            method.add_argument("--lr", type=float, default=0.001, help="Adam learning rate (paper 000)")
            method.add_argument("--linear-gradient", action=argparse.BooleanOptionalAction, default="auto",
                                help="linear-gradient ReLU at the layer (default: on where the layer is a ReLU)")
            method.add_argument("--stop-fidelity", type=float, default=METAMER_STOP_FIDELITY,
                                help="stop each image once its Spearman fidelity at --layer reaches this; 0 runs all "
                                     "--max-iter steps (paper 000: 15000, hours on a CPU)")
        if name == "distortions":
            method.add_argument("--amplitude", type=float, default=0.1, help="peak pixel change when showing a distortion")
        method.set_defaults(run=_cmd_synth)

    fetch = _add_command(commands, "fetch-weights", "download ImageNet weights into the torch cache (needs network)")
    fetch.add_argument("names", nargs="+", help="network names, e.g. alexnet")
    fetch.set_defaults(run=_cmd_fetch_weights)

    run = _add_command(commands, "run", "run a study from its TOML file: tables, figures, report.html")
    run.add_argument("config", help="the study file (see README: 'The study file')")
    run.add_argument("--overwrite", action="store_true", help="replace a finished run's results (the step cache is reused)")
    run.add_argument("--n-jobs", type=_jobs, default=None, help="parallel subjects (default: [parallel] n_jobs)")
    run.add_argument("--scheduler", default=None, help="dask://HOST:PORT: run the per-subject work on a Dask cluster (default: [parallel] scheduler, else local)")
    run.add_argument("--quiet", action="store_true", help="no step display or progress bars")
    run.set_defaults(run=_cmd_run)

    demo = _add_command(commands, "demo", "the whole study offline on bundled photos and simulated subjects")
    demo.add_argument("--output", default="brainprobe-demo", help="output folder")
    demo.add_argument("--overwrite", action="store_true", help="replace the results of an earlier demo")
    demo.add_argument("--n-images", type=_positive_int, default=None, help="how many sample photos (default: all 12)")
    demo.add_argument("--subjects", type=_positive_int, default=3, help="simulated subjects")
    demo.add_argument("--max-iter", type=_positive_int, default=None, help="adversarial optimization steps (default: 1000)")
    demo.add_argument("--n-perm", type=int, default=None, help="permutations and bootstraps (default: 1000)")
    demo.add_argument("--n-jobs", type=_jobs, default=None, help="parallel subjects, -1 for every core (default: 1)")
    demo.add_argument("--device", help="cpu, cuda ... (default: cuda when available)")
    demo.add_argument("--quiet", action="store_true", help="no step display or progress bars")
    demo.set_defaults(run=_cmd_demo)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text!r}")
    return value


def _jobs(text: str) -> int:
    """A number of parallel jobs: a positive integer, or -1 for every core."""
    if text.strip() == "-1":
        return -1
    return _positive_int(text)


def _cap_jobs(args) -> None:
    """``--n-jobs`` above the machine's cores is lowered to them, with a warning."""
    import os

    n_jobs = getattr(args, "n_jobs", None)
    cores = os.cpu_count() or 1
    if n_jobs is not None and n_jobs > cores:
        print(f"warning: --n-jobs {n_jobs} is more than the {cores} CPU cores here; using {cores}", file=sys.stderr)
        args.n_jobs = cores


# what a rerun after Ctrl-C does: a study caches each finished step, the image commands start over
_RERUN = {"run": "a rerun resumes from the finished steps (they are cached)",
          "demo": "a rerun resumes from the finished steps (they are cached)",
          "other": "a rerun starts again from the beginning"}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``brainprobe`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    _cap_jobs(args)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print(f"interrupted: nothing half-written was kept; {_RERUN.get(args.command, _RERUN['other'])}", file=sys.stderr)
        return 130
    except (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError, ValueError,
            KeyError, ImportError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, a read-only folder, ...
        where = f" ({error.filename})" if getattr(error, "filename", None) else ""
        print(f"error: {error.strerror or error}{where}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
