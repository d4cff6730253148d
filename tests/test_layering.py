"""Data flows one way: the root package imports nothing from training at import, and training never imports the
benchmarks' noise generators."""

import json
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(
    """
    import importlib, json, sys
    for name in {imports!r}:
        importlib.import_module(name)
    print(json.dumps(sorted(m for m in sys.modules if m.startswith({prefixes!r}))))
    """
)


def _loaded(imports: list[str], prefixes: tuple[str, ...]) -> list[str]:
    code = CHILD.format(imports=imports, prefixes=prefixes)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_root_package_imports_nothing_from_training_at_import():
    root = ["labelmend", "labelmend.cli", "labelmend.registry", "labelmend.run_format", "labelmend.bundle_format",
            "labelmend.folders", "labelmend.evaluate", "labelmend.plots", "labelmend.review"]
    assert _loaded(root, ("labelmend.train", "labelmend.export", "tensorflow", "keras")) == []


def test_training_never_imports_the_benchmarks_noise_generators():
    pytest.importorskip("tensorflow")
    training = ["labelmend.train.pipeline", "labelmend.train.label_issues", "labelmend.train.methods.noisy_ce",
                "labelmend.train.methods.forward_confident", "labelmend.train.reports", "labelmend.export.bundle"]
    assert _loaded(training, ("labelmend.benchmarking",)) == []
