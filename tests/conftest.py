"""Shared test set-up: make the helper modules in tests/ (``_data_factory``, ``_bundle_factory``) importable.

pytest runs with ``--import-mode=importlib``, which keeps the repository root off ``sys.path`` (so ``labelmend``
always resolves to the installed package); the helpers are then found through this folder alone.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
