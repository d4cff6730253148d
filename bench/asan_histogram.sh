#!/usr/bin/env bash
# Build the histogram kernel with AddressSanitizer into a throwaway copy of the package and run
# the histogram tests (example + property tests) against it. The real ext/*.so is never touched.
#
#   bench/asan_histogram.sh                  # default: tests/test_histogram.py + tests/test_histogram_fuzz.py
#   HYPOTHESIS_PROFILE=long HYPOTHESIS_LONG_EXAMPLES=2000 bench/asan_histogram.sh tests/test_histogram_fuzz.py
#       (the long profile under ASan; ASan + PYTHONMALLOC=malloc makes the Python-heavy property tests
#        several times slower, so keep the example count modest here)
#   bench/asan_histogram.sh tests/test_histogram.py -k kernel # other pytest arguments
#
# Env: PYTHON (default: python3 on PATH, e.g. the project venv), KEEP=1 keeps the temp dir,
#      SANITIZE (default "address"; e.g. "address,undefined" adds UBSan, reported via stderr).
# Exit status: pytest's (ASan aborts the process on the first error: abort_on_error=1).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
SANITIZE="${SANITIZE:-address}"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/labelmend-asan.XXXXXX")"
if [[ "${KEEP:-0}" != 1 ]]; then trap 'rm -rf "$TMP"' EXIT; else echo "keeping $TMP"; fi

# 1. A throwaway copy of the package, laid out as the installed namespace `labelmend`
#    (pyproject's package-dir mapping), without any built artefacts.
PKG="$TMP/pkg/labelmend"
mkdir -p "$PKG"
cp -r "$REPO"/labelmend/. "$PKG"/
for sub in ext runtime train export; do
    [[ -d "$REPO/$sub" ]] && cp -r "$REPO/$sub" "$PKG/$sub"
done
find "$TMP/pkg" -depth -name '__pycache__' -exec rm -rf {} +
find "$TMP/pkg" \( -name '*.so' -o -name '*.c' \) -delete

# 2. Cythonize + compile with ASan (same directives as setup.py: boundscheck/wraparound off).
PYINC="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
NPINC="$("$PYTHON" -c 'import numpy; print(numpy.get_include())')"
SUFFIX="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
"$PYTHON" -m cython -3 --module-name labelmend.ext._histogram \
    -X boundscheck=False -X wraparound=False \
    -o "$PKG/ext/_histogram.c" "$PKG/ext/_histogram.pyx"
SO="$PKG/ext/_histogram$SUFFIX"
gcc -shared -fPIC -fsanitize="$SANITIZE" -fno-omit-frame-pointer -g -O1 \
    -DNPY_NO_DEPRECATED_API=NPY_1_7_API_VERSION -I"$PYINC" -I"$NPINC" \
    "$PKG/ext/_histogram.c" -o "$SO"
if ! nm -D "$SO" | grep -q '__asan_'; then echo "FAIL: $SO is not ASan-instrumented" >&2; exit 2; fi
echo "ASan build: $SO"

# 3. Run under ASan. The throwaway package goes first on sys.path; PYTHONSAFEPATH keeps the cwd
#    (the repo, which holds a plain labelmend/ folder) off it, and the editable-install finder
#    sits after PathFinder, so `labelmend.*` resolves to the copy. The guard plugin re-checks that
#    inside the pytest process and fails the session otherwise.
LIBASAN="$(gcc -print-file-name=libasan.so)"
cat > "$TMP/pkg/_asan_guard.py" <<EOF
import os
import pytest

EXPECTED = os.path.realpath("$SO")


def _check():
    import labelmend.ext
    import labelmend.ext._histogram as h
    got = os.path.realpath(h.__file__)
    if got != EXPECTED or not labelmend.ext.HAVE_EXTENSION:
        raise pytest.UsageError(f"ASan guard: imported {got}, expected {EXPECTED}")
    return got


def pytest_configure(config):
    config._asan_module = _check()


def pytest_report_header(config):
    return f"asan kernel: {config._asan_module}"


def pytest_sessionfinish(session, exitstatus):
    _check()
EOF

# 3a. Positive control: prove ASan is live in this process setup (a deliberate heap overflow
#     in a tiny ASan-built library must abort with a report).
cat > "$TMP/canary.c" <<'EOF'
#include <stdlib.h>
int oob(int n) { volatile int *p = malloc(n * sizeof(int)); int v = p[n]; free((void *)p); return v; }
EOF
gcc -shared -fPIC -fsanitize=address -g -O1 "$TMP/canary.c" -o "$TMP/canary.so"
if (LD_PRELOAD="$LIBASAN" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
        "$PYTHON" -c "import ctypes; ctypes.CDLL('$TMP/canary.so').oob(4)" 2>"$TMP/canary.err"; exit $?) 2>/dev/null; then
    echo "FAIL: ASan positive control did not fire" >&2; exit 2
fi
grep -q 'heap-buffer-overflow' "$TMP/canary.err" || { cat "$TMP/canary.err" >&2; exit 2; }
echo "ASan positive control: heap-buffer-overflow detected (ok)"

if [[ $# -eq 0 ]]; then set -- tests/test_histogram.py tests/test_histogram_fuzz.py; fi
cd "$REPO"
set +e
env LD_PRELOAD="$LIBASAN" \
    ASAN_OPTIONS="detect_leaks=0:abort_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
    PYTHONMALLOC=malloc PYTHONSAFEPATH=1 PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH="$TMP/pkg${PYTHONPATH:+:$PYTHONPATH}" \
    "$PYTHON" -m pytest -n 0 -p _asan_guard -p no:cacheprovider "$@"  # one process: the guard checks it
rc=$?
echo "pytest exit status under ASan: $rc"
exit $rc
