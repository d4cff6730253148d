"""Shared test set-up.

- The helper modules in tests/ (``_data_factory``, ``_bundle_factory``) are importable: pytest runs with
  ``--import-mode=importlib``, which keeps the repository root off ``sys.path`` (so ``labelmend`` always resolves to
  the installed package); the helpers are then found through this folder alone.
- Property tests (Hypothesis) draw new examples on every run. A failure prints its falsifying example and an
  ``@reproduce_failure(...)`` line: paste that line above the test to rerun exactly that draw, or rerun the whole
  search with ``pytest --hypothesis-seed=N``.
- ``pytest --hypothesis-scale=100`` runs every property test with 100× its examples: a one-off hunt for rare draws
  (it takes about as many minutes as the scale says; CI runs the suite at scale 1).
"""

import sys
from pathlib import Path

from hypothesis import settings

sys.path.insert(0, str(Path(__file__).parent))

settings.register_profile("labelmend", print_blob=True)
settings.load_profile("labelmend")


def pytest_addoption(parser):
    parser.addoption("--hypothesis-scale", type=int, default=1, metavar="N",
                     help="run every Hypothesis test with N times its max_examples (a one-off search for rare draws)")


def pytest_collection_modifyitems(config, items):
    scale = config.getoption("--hypothesis-scale")
    if scale == 1:
        return
    if scale < 1:
        raise ValueError(f"--hypothesis-scale must be a whole number >= 1, got {scale}")
    for item in items:
        test = getattr(item, "obj", None)
        if getattr(test, "is_hypothesis_test", False):
            # Hypothesis reads a test's settings from this attribute at call time; explicit @settings(max_examples)
            # beat any profile, so the scale is applied here, per test
            current = test._hypothesis_internal_use_settings
            test._hypothesis_internal_use_settings = settings(current, max_examples=current.max_examples * scale)
