#!/usr/bin/env python3
"""CI: each documented install resolves to exactly the onnxruntime distribution it should (issue: GPU install).

onnxruntime and onnxruntime-gpu (and the other builds: -directml, -openvino, ...) all install the same `onnxruntime`
module into the same folder, so an environment holding two of them is broken. This script RESOLVES, without installing
anything, the full dependency set (transitive included) of the base requirements plus each extra combination below with
`pip install --dry-run --ignore-installed --report`, and asserts which onnxruntime distribution is in it:
`train-gpu` and `gpu` → onnxruntime-gpu only; `train` and `cpu` → onnxruntime only; `eval` (and `test`) alone → none.

The requirements are read from pyproject.toml (base `dependencies` + the extras), not from a built `.[extra]`: pip would
otherwise build the package's metadata in an isolated environment (setuptools, Cython, numpy) once per combination.

Only metadata is fetched, never CUDA: pip reads each wheel's METADATA from the index's PEP 658 `.metadata` file when
the index serves one (pypi.org does; the mirror this was measured on does not), else, with `--use-feature=fast-deps`,
by HTTP range requests into the wheel (a few MB for tensorflow's 570 MB wheel) — not the ~3.7 GB of
tensorflow[and-cuda] + nvidia-* + onnxruntime-gpu wheels that a plain dry-run downloads from an index without
`.metadata` files. That needs pip >= 25.3: older pips download every wheel of a dry-run anyway (measured: 23.2 and
24.2 to 25.2 do, 25.3 and 26.x do not), so this script refuses to run on them (CI upgrades pip first). It resolves for
this interpreter and platform (CI: Linux x86_64), where onnxruntime-gpu and the nvidia-* wheels exist.

Usage: .venv/bin/python .ci/check_extras.py [EXTRAS ...]     (default: every combination below; about a minute)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the TOML reader that pip itself vendors
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
MIN_PIP = (25, 3)  # the first pip whose --dry-run resolves from metadata alone, without downloading the wheels
GPU, CPU = "onnxruntime-gpu", "onnxruntime"
# the distributions that ship the `onnxruntime` module (onnxruntime-extensions / -genai are other modules: not here)
ORT_DISTS = {CPU, GPU, "onnxruntime-directml", "onnxruntime-openvino", "onnxruntime-training", "onnxruntime-qnn",
             "onnxruntime-rocm", "onnxruntime-migraphx", "onnxruntime-cann", "ort-nightly", "ort-nightly-gpu"}
# extra combination → the one onnxruntime distribution its resolved set must hold (None: no onnxruntime at all)
EXPECTED = {
    "cpu": CPU,
    "gpu": GPU,
    "eval": None,
    "test": None,
    "cpu,eval": CPU,
    "gpu,eval": GPU,
    "train": CPU,
    "train-gpu": GPU,
    "train,test": CPU,  # README set-up command 1
    "train-gpu,test": GPU,  # its CUDA form
}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(project: dict, combo: str) -> list[str]:
    extras = project.get("optional-dependencies", {})
    reqs = list(project.get("dependencies", []))
    for extra in combo.split(","):
        if extra not in extras:
            raise SystemExit(f"check_extras: pyproject.toml has no extra {extra!r} (extras: {sorted(extras)})")
        reqs += extras[extra]
    return reqs


def resolve(reqs: list[str], workdir: Path, fast_deps: bool = True) -> tuple[dict[str, str], float]:
    """{normalized name: version} of everything pip would install for ``reqs`` into an empty environment."""
    report = workdir / "report.json"
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
           "--disable-pip-version-check", "--report", str(report)]
    if fast_deps:
        cmd.append("--use-feature=fast-deps")
    t0 = time.perf_counter()
    proc = subprocess.run([*cmd, *reqs], capture_output=True, text=True, timeout=600, cwd=workdir)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0 and fast_deps and "fast-deps" in proc.stderr:  # a pip that no longer knows the feature
        print("check_extras: this pip has no --use-feature=fast-deps; resolving without it", file=sys.stderr)
        return resolve(reqs, workdir, fast_deps=False)
    if proc.returncode != 0:
        noise = ("is ignored: it is neither a file nor a directory", "fast-deps")
        err = "\n".join(line for line in proc.stderr.splitlines() if not any(n in line for n in noise))
        raise SystemExit(f"check_extras: pip could not resolve {reqs}:\n{err}")
    installs = json.loads(report.read_text())["install"]
    return {normalize(i["metadata"]["name"]): i["metadata"]["version"] for i in installs}, seconds


def check(project: dict, combo: str) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory(prefix="check_extras_") as tmp:
        resolved, seconds = resolve(requirements(project, combo), Path(tmp))
    ort = sorted(n for n in resolved if n in ORT_DISTS)
    want = EXPECTED[combo]
    ok = ort == ([want] if want else [])
    found = ", ".join(f"{n}=={resolved[n]}" for n in ort) or "no onnxruntime"
    line = (f"{'ok  ' if ok else 'FAIL'} .[{combo}]: {found} ({len(resolved)} distributions, {seconds:.0f} s)"
            + ("" if ok else f"; expected {f'{want} alone' if want else 'no onnxruntime'}"))
    return ok, line


def pip_version() -> tuple[int, ...]:
    out = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True, check=True).stdout
    return tuple(int(part) for part in re.match(r"pip (\d+)\.(\d+)", out).groups())


def main(argv: list[str]) -> int:
    if pip_version() < MIN_PIP:
        print(f"check_extras: pip {'.'.join(map(str, pip_version()))} downloads every wheel in a dry-run (GBs for "
              f"the CUDA extras); upgrade it first: {sys.executable} -m pip install --upgrade 'pip>="
              f"{'.'.join(map(str, MIN_PIP))}'", file=sys.stderr)
        return 2
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = set(project.get("optional-dependencies", {}))
    singles = {c for c in EXPECTED if "," not in c}
    if extras != singles:
        print(f"check_extras: FAIL: pyproject's extras {sorted(extras)} differ from the ones this script knows "
              f"{sorted(singles)}; add the new extra to EXPECTED", file=sys.stderr)
        return 1
    combos = argv or list(EXPECTED)
    unknown = [c for c in combos if c not in EXPECTED]
    if unknown:
        print(f"check_extras: unknown combination(s) {unknown}; known: {list(EXPECTED)}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=4) as pool:  # network-bound: the resolutions overlap well
        results = list(pool.map(lambda c: check(project, c), combos))
    for _, line in results:
        print(f"check_extras: {line}")
    failed = sum(not ok for ok, _ in results)
    print(f"check_extras: {len(combos) - failed}/{len(combos)} extra combinations resolve to the expected onnxruntime "
          f"({time.perf_counter() - t0:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
