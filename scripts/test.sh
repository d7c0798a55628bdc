#!/usr/bin/env bash
# What `make test` (and so CI, .ci/run) runs after setup:
#   1. install the example plugin package examples/harness-extra-attacks next to the harness,
#      as a plugin author's users would;
#   2. the project's test suite, which must not see it (tests never load third-party plugins);
#   3. the example's own tests (they use harness.testing, as any plugin author's tests would);
#   4. a small suite that uses it through `harness run`;
#   5. uninstall it, also when a step failed.
# Arguments go to the project's pytest (step 2).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
BIN="$(cd "$VENV/bin" && pwd)"
EXAMPLE=examples/harness-extra-attacks
work=$(mktemp -d)

cleanup() {
  "$BIN/python" -m pip uninstall -q -y harness-extra-attacks >/dev/null 2>&1 || true
  rm -rf "$EXAMPLE"/src/*.egg-info "$work"
}
trap cleanup EXIT

echo "[test] installing $EXAMPLE"
# without build isolation when the environment's setuptools can build it (no download)
"$BIN/python" -m pip install -q --no-deps --no-build-isolation -e "$EXAMPLE" >/dev/null 2>&1 \
  || "$BIN/python" -m pip install -q --no-deps -e "$EXAMPLE"

echo "[test] the project's tests (with $EXAMPLE installed)"
"$BIN/python" -m pytest -q "$@"

echo "[test] $EXAMPLE: its own tests"
(cd "$EXAMPLE" && env -u HARNESS_LOAD_PLUGINS "$BIN/python" -m pytest -q -p no:cacheprovider)

echo "[test] $EXAMPLE: a suite that uses it"
HARNESS_LOAD_PLUGINS=harness-extra-attacks HARNESS_CACHE_DIR="$work/cache" \
  "$BIN/harness" run "$EXAMPLE/suites/smoke.yaml" --no-log --set output_dir="$work/results"
