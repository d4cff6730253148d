"""The `labelmend` command: train → export → evaluate, predict, and `run` (all three on the shipped sample).

Exit codes: 0 success; 1 a user error (bad data, bundle, device or command line), reported as one line on stderr —
`--debug` shows the traceback; 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import re
import sys
import tempfile
import threading
from pathlib import Path

from labelmend import __version__, registry
from labelmend.errors import LabelmendError
from labelmend.run_format import DEFAULT_VAL_FRACTION, PRECISIONS

SAMPLE_TRAIN = Path("data/sample/train")
SAMPLE_TEST = Path("data/sample/test")
# which extra each command needs beyond the runtime (numpy + onnxruntime)
EXTRAS = {"train": "train", "export": "train", "run": "train", "evaluate": "cpu,eval", "predict": None,
          "issues": "cpu,eval", "review": "eval"}
_TRAIN_MODULES = ("tensorflow", "keras", "tf2onnx", "skl2onnx", "cv2", "sklearn")
_EXTRA_MODULES = (*_TRAIN_MODULES, "matplotlib", "tqdm", "onnx", "PIL")


class _Parser(argparse.ArgumentParser):
    """argparse, with every command-line mistake reported as one line and exit code 1, like other user errors."""

    def error(self, message):
        self.exit(1, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _models(text: str) -> list[str]:
    names = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in names if m not in registry.MODEL_NAMES]
    if not names or bad:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated subset of {','.join(registry.MODEL_NAMES)}, got {text!r}")
    return names


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535 (0: any free port), got {text!r}")
    return int(text)


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="labelmend", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"labelmend {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def add_train_options(p, *, budget_min: float):
        p.add_argument("--models", type=_models, default=list(registry.MODEL_NAMES),
                       help=f"comma-separated subset of {','.join(registry.MODEL_NAMES)} (default: all)")
        p.add_argument("--time-budget", type=_positive(float), default=budget_min, metavar="MIN",
                       help=f"wall-clock minutes for the whole training command (default: {budget_min:g})")
        p.add_argument("--seed", type=int, default=0, help="seed for the split, initialisation and batches")
        p.add_argument("--val-fraction", type=_fraction, default=DEFAULT_VAL_FRACTION,
                       help="share of the clean-labelled images held out for validation "
                            f"(default: {DEFAULT_VAL_FRACTION:g})")
        p.add_argument("--epochs", type=_positive(float), default=None,
                       help="fix the CNN epochs instead of sizing them to the budget (reproducible)")
        p.add_argument("--width", type=_positive(int), default=None,
                       help="CNN width (default: 16 on CPU, 64 when TensorFlow sees a GPU)")
        p.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="CNN training arithmetic (default auto: bfloat16 where the CPU has native bf16, else "
                            "float32); the exported models are float32 either way")

    p = sub.add_parser("train", help="train the baseline, Model I and Model II into a run directory")
    p.add_argument("--data", type=Path, help="client data folder (images/, noisy_labels.csv, ...)")
    p.add_argument("--out", type=Path, help="run directory to write (replaced atomically)")
    p.add_argument("--class-names", type=Path, default=None, metavar="FILE",
                   help="class names, one per line in label order (default: DATA/class_names.txt if present, "
                        "else 0 … K-1)")
    p.add_argument("--resume", type=Path, metavar="RUN", default=None,
                   help="continue the interrupted `train --out RUN` with its saved settings")
    add_train_options(p, budget_min=30)

    p = sub.add_parser("export", help="convert a run's models to an ONNX bundle")
    p.add_argument("--run", required=True, type=Path, help="run directory written by `labelmend train`")
    p.add_argument("--bundle", required=True, type=Path, help="bundle directory to write (replaced atomically)")
    p.add_argument("--models", type=_models, default=None, help="subset of the run's models (default: all)")
    p.add_argument("--no-tta", dest="flip_tta", action="store_false", default=None,
                   help="CNN graphs without flip test-time augmentation: ~2x faster per image, slightly less accurate")
    p.add_argument("--int8", action="store_true",
                   help="statically quantized int8 CNN graphs (calibrated on training images); refused when validation "
                        "accuracy drops more than --int8-max-drop below float32")
    p.add_argument("--int8-max-drop", type=_fraction, default=None, metavar="FRACTION",
                   help="largest accepted int8 accuracy drop on the validation images (default: 0.01 = 1 point)")

    p = sub.add_parser("evaluate", help="score a bundle on a client test folder")
    p.add_argument("--bundle", required=True, type=Path)
    p.add_argument("--test-data", required=True, type=Path, help="folder with test_images/ and test_labels.csv")
    p.add_argument("--out", type=Path, default=None, help="report directory (default: BUNDLE-evaluation)")
    p.add_argument("--models", type=_models, default=None, help="subset of the bundle's models (default: all)")

    p = sub.add_parser("predict", help="classify image files (PNG, JPEG, BMP, WebP; any size) with a bundle")
    p.add_argument("--bundle", required=True, type=Path)
    p.add_argument("--model", default=None, help="model in the bundle (default: the manifest's default_model)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE")

    p = sub.add_parser("issues", help="which labels of a run look wrong: summary, and the gallery redrawn")
    p.add_argument("run", type=Path, metavar="RUN", help="run directory written by `labelmend train`")
    p.add_argument("--top", type=_positive(int), default=None, metavar="N",
                   help="redraw reports/label_issues_gallery.png with the N most suspect images per class "
                        "(reads them from the run's data folder)")

    p = sub.add_parser("review", help="check the labels a run doubts in the browser: a local page over its review "
                                      "queue that writes DATA/verified_labels.csv")
    p.add_argument("run", type=Path, metavar="RUN", help="run directory written by `labelmend train`")
    p.add_argument("--data", type=Path, default=None, help="the run's data folder (default: where the run read it)")
    p.add_argument("--port", type=_port, default=0, help="port on 127.0.0.1 (default: any free one)")
    p.add_argument("--no-browser", dest="browser", action="store_false", help="print the URL, do not open it")

    p = sub.add_parser("run", help="train → export → evaluate in one go (default: the sample shipped in the repo)")
    p.add_argument("--data", type=Path, default=SAMPLE_TRAIN, help=f"training data (default: {SAMPLE_TRAIN})")
    p.add_argument("--test-data", type=Path, default=SAMPLE_TEST, help=f"test data (default: {SAMPLE_TEST})")
    p.add_argument("--workdir", type=Path, default=Path("runs/sample"),
                   help="where run/, bundle/ and evaluation/ go (default: runs/sample)")
    add_train_options(p, budget_min=4)
    return parser


def _require_training_extras() -> None:
    """Fail in one line, before any work, when the `train` extra is missing (e.g. in an eval-only install)."""
    import importlib.util

    for module in _TRAIN_MODULES:
        if importlib.util.find_spec(module) is None:
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)


def _train(args) -> None:
    _require_training_extras()
    from labelmend.train.pipeline import train

    resume = getattr(args, "resume", None)
    train(args.data, resume or args.out, models=args.models, time_budget_s=args.time_budget * 60, seed=args.seed,
          val_fraction=args.val_fraction, epochs=args.epochs, width=args.width, precision=args.precision,
          progress=not args.quiet,
          resume=resume is not None, class_names=getattr(args, "class_names", None))


def _export(args) -> None:
    _require_training_extras()
    from labelmend.export.bundle import export_bundle

    manifest = export_bundle(args.run, args.bundle, models=args.models, flip_tta=getattr(args, "flip_tta", None),
                             int8=getattr(args, "int8", False), int8_max_drop=getattr(args, "int8_max_drop", None),
                             progress=not args.quiet)
    for name, spec in manifest["models"].items():
        line = (f"{name}: {args.bundle / spec['file']} ({spec['size_bytes'] / 1024:.0f} KiB, "
                f"parity max |diff| {spec['export']['parity_max_abs_diff']:.1e}")
        q = spec["export"].get("quantization")
        if q:
            line += (f"; int8: validation accuracy {q['val_accuracy_int8']:.4f} vs float32 {q['val_accuracy_fp32']:.4f}"
                     f", {q['size_bytes_fp32'] / 1024:.0f} → {q['size_bytes_int8'] / 1024:.0f} KiB")
        print(line + ")")


def _evaluate(args) -> None:
    from labelmend.evaluate import evaluate

    out = args.out or args.bundle.with_name(args.bundle.name + "-evaluation")
    metrics = evaluate(args.bundle, args.test_data, out, models=args.models, progress=not args.quiet)
    for name, report in metrics["reports"].items():
        print(f"=== {name}: accuracy {metrics['models'][name]['accuracy']:.4f} on {metrics['n_images']} images ===")
        print(report)
    print(f"reports, confusion matrices and label_prediction.csv in {out}")


def _predict(args) -> None:
    import numpy as np

    from labelmend.runtime import load
    from labelmend.runtime.images import to_input

    predictor = load(args.bundle, args.model, device=args.device)
    images = np.stack([to_input(p) for p in args.images])
    for path, label in zip(args.images, predictor.predict_batch(images)):
        print(f"{path}\t{label}\t{predictor.class_names[label]}")


def _review(args) -> None:
    from labelmend.review import serve

    serve(args.run, data_dir=args.data, port=args.port, open_browser=args.browser, quiet=args.quiet)


def _issues(args) -> None:
    from labelmend.train.label_issues import describe_run

    for line in describe_run(args.run, top=args.top):
        print(line)


def _run(args) -> None:
    for folder, what in ((args.data, "--data"), (args.test_data, "--test-data")):
        if not folder.is_dir():
            raise LabelmendError(f"{folder}: not found ({what}); run from the repository root to use the shipped "
                                 f"sample, or pass {what}")
    run_dir, bundle, evaluation = args.workdir / "run", args.workdir / "bundle", args.workdir / "evaluation"
    args.out = run_dir
    _train(args)
    args.run, args.bundle, args.models = run_dir, bundle, None
    _export(args)
    args.out = evaluation
    _evaluate(args)


# TensorFlow's native start-up lines that TF_CPP_MIN_LOG_LEVEL does not reach: absl logs them before it reads the
# level (on CPUs where oneDNN is on by default, e.g. with AVX-512, the "oneDNN custom operations are on" notice)
_TF_STARTUP_LINES = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
                               r"|I\d{4} [\d:. ]+\d+ port\.cc:\d+\] oneDNN custom operations are on)")


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with stderr held back (at the file descriptor, where its C++ code writes) and pass on what it
    wrote, less :data:`_TF_STARTUP_LINES`; nothing when TensorFlow is not installed."""
    if importlib.util.find_spec("tensorflow") is None:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            for line in held.read().decode("utf-8", errors="replace").splitlines(keepends=True):
                if not _TF_STARTUP_LINES.match(line):
                    sys.stderr.write(line)


_TF_PY_LOG = ("WARNING:tensorflow:", "INFO:tensorflow:", "ERROR:tensorflow:")  # its Python logger, e.g. retracing
# one line of TensorFlow's C++ log (absl): severity, MMDD, time, thread, file:line]
_TF_LOG_LINE = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ [^\]\s]+:\d+\] ")


@contextlib.contextmanager
def _tensorflow_logs_held_back():
    """While a quiet command runs, hold back TensorFlow's log lines (C++ and Python, and their continuation lines)
    that reach stderr, e.g. a collective's error report when a worker is lost; pass everything else.
    A pipe replaces fd 2 and a thread filters it into the real stderr."""
    sys.stderr.flush()
    real = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump():
        holding = False
        with os.fdopen(read_end, "rb") as pipe:
            for raw in pipe:
                line = raw.decode("utf-8", errors="replace")
                if _TF_LOG_LINE.match(line) or _TF_STARTUP_LINES.match(line) or line.startswith(_TF_PY_LOG):
                    holding = True
                elif holding and not line.startswith(("[labelmend]", "labelmend ", "Traceback")):
                    pass  # the rest of a multi-line TensorFlow message
                else:
                    holding = False
                    os.write(real, raw)

    thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)  # the pipe's last write end closes: the thread drains it and ends
        thread.join(timeout=10)
        os.close(real)


COMMANDS = {"train": _train, "export": _export, "evaluate": _evaluate, "predict": _predict, "issues": _issues,
            "review": _review, "run": _run}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train" and args.resume is None and (args.data is None or args.out is None):
        parser.error("train needs --data DIR and --out RUN (or --resume RUN)")
    if args.quiet:
        os.environ["LABELMEND_PROGRESS"] = "0"
    # before anything imports TensorFlow: its C++ start-up lines (absl, CPU features, grappler sessions) are not
    # the user's business; its warnings and errors are TF_CPP_MIN_LOG_LEVEL=0 away (--debug)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if args.debug else "2")
    hide_tf = EXTRAS[args.command] == "train" and not args.debug
    try:
        # --quiet: every TensorFlow line is held back while the command runs (its start-up lines included); else only
        # its start-up lines, at import (a filter on stderr for the whole command would hold back progress bars' \r)
        with _tensorflow_logs_held_back() if hide_tf and args.quiet else contextlib.nullcontext():
            if hide_tf and not args.quiet:
                _import_tensorflow_quietly()
            COMMANDS[args.command](args)
    except LabelmendError as exc:
        if args.debug:
            raise
        print(f"labelmend {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        if args.debug or exc.name not in _EXTRA_MODULES:
            raise
        extra = EXTRAS[args.command] or "cpu,eval"
        print(f"labelmend {args.command}: error: {exc.name} is not installed; this command needs the {extra!r} extra: "
              f"pip install 'labelmend[{extra}]'", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"labelmend {args.command}: interrupted; earlier outputs were left untouched", file=sys.stderr)
        return 130
    return 0
