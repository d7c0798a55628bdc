#!/usr/bin/env bash
# Set up (or refresh) the project's virtual environment on a fresh machine: Debian packages for
# the offline canary data, torch/torchaudio, the project (editable, with the optional Ray
# executor, whose tests CI runs) and audiocraft.
# Idempotent: a stamp keyed on this script and pyproject.toml skips work that is already done.
#
# Environment knobs:
#   VENV=.venv                  where the environment lives
#   PYTHON=python3              interpreter used to create it (3.11+)
#   TORCH_SPEC="torch==2.14.1 torchaudio==2.11.0"
#                               torch build; GPU users may point this at their CUDA wheels.
#                               torchaudio 2.8+ wheels are CUDA builds: on a CPU-only torch they
#                               fail to import, so the default is the CUDA torch, which runs on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchaudio==2.11.0"}
APT_PACKAGES="fluidsynth abcmidi timgm6mb-soundfont sox espeak-ng"

stamp_value=$( (cat scripts/setup.sh pyproject.toml; echo "$TORCH_SPEC") | sha256sum | cut -c1-16)
stamp_file="$VENV/.setup-stamp"
if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp_value" ]]; then
  exit 0
fi

need_apt=0
for bin in fluidsynth abc2midi sox; do command -v "$bin" >/dev/null || need_apt=1; done
[[ -f /usr/share/sounds/sf2/TimGM6mb.sf2 ]] || need_apt=1
if [[ $need_apt == 1 ]]; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "[setup] installing Debian packages: $APT_PACKAGES"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $APT_PACKAGES >/dev/null
  else
    echo "[setup] please install these Debian packages (needed for the offline canary data):" >&2
    echo "        sudo apt-get install $APT_PACKAGES" >&2
    exit 1
  fi
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[setup] creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
echo "[setup] installing $TORCH_SPEC"
$PIP install -q $TORCH_SPEC
echo "[setup] installing the project"
$PIP install -q -e '.[dev,audiocraft,ray]'
# audiocraft's metadata pins torch 2.1 and old xformers/av; its real runtime dependencies are the
# [audiocraft] extra above, so the package itself goes in without its stale pins.
echo "[setup] installing audiocraft (--no-deps)"
$PIP install -q --no-deps audiocraft==1.3.0
"$VENV/bin/python" -c "import harness, torch, torchaudio, diffusers, mlflow" \
  || { echo "[setup] import check failed" >&2; exit 1; }
echo "$stamp_value" > "$stamp_file"
echo "[setup] done: $VENV"
