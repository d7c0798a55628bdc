#!/usr/bin/env bash
# Scripted check (not in CI): serve a suite's MLflow store with `mlflow ui`, open the leaderboard
# URL that `harness run` prints in headless Chromium (Debian's `chromium`) and save a screenshot,
# then check that the page lists the MIA runs with the auc and tpr_at_fpr_0.01 columns. The
# columns come from the leaderboard view `harness log`/`run` stores in the experiment (tag
# mlflow.sharedViewState.harness-leaderboard, opened by ?viewStateShareKey=harness-leaderboard).
#
#   bash scripts/mlflow_leaderboard_screenshot.sh [STORE_URI] [EXPERIMENT] [OUT.png]
#   defaults: sqlite:///mlflow.db (the demo's store, after `make demo`), demo, leaderboard.png
#
# Needs: `apt-get install chromium`; the project's venv (VENV, default .venv).
set -euo pipefail
URI=${1:-sqlite:///mlflow.db}
EXP=${2:-demo}
OUT=${3:-leaderboard.png}
VENV=${VENV:-.venv}
PORT=${PORT:-5055}
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || { echo "chromium not found: apt-get install chromium" >&2; exit 2; }

URL=$("$VENV/bin/python" - "$URI" "$EXP" "$PORT" <<'PY'
import sys
from mlflow import MlflowClient
from harness.tracking import leaderboard_url, normalize_uri
uri, exp, port = normalize_uri(sys.argv[1]), sys.argv[2], int(sys.argv[3])
e = MlflowClient(uri).get_experiment_by_name(exp)
if e is None:
    sys.exit(f"no experiment '{exp}' in {uri}")
print(leaderboard_url(uri, e.experiment_id, port=port))
PY
)
LOG=$(mktemp)
"$VENV/bin/python" -m mlflow ui --backend-store-uri "$URI" --host 127.0.0.1 --port "$PORT" >"$LOG" 2>&1 &
UI_PID=$!
PROFILE=$(mktemp -d)
cleanup() { kill "$UI_PID" 2>/dev/null || true; rm -rf "$PROFILE" "$LOG"; }
trap cleanup EXIT
for _ in $(seq 180); do   # a loaded machine can take minutes
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  sleep 1
done
curl -sf "http://127.0.0.1:$PORT/health" >/dev/null || { cat "$LOG" >&2; exit 1; }
echo "leaderboard: $URL"
CH=("$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars
    --user-data-dir="$PROFILE" --window-size=1600,1000 --virtual-time-budget=20000)
"${CH[@]}" --screenshot="$OUT" "$URL" 2>/dev/null
DOM=$("${CH[@]}" --dump-dom "$URL" 2>/dev/null)
echo "screenshot: $OUT"
ok=1
# column headers (ag-grid col-id), not just the words: a view without the columns has neither
for want in 'col-id="metrics.`auc`"' 'col-id="metrics.`tpr_at_fpr_0.01`"' " × "; do
  if grep -qF -- "$want" <<<"$DOM"; then echo "page shows: '$want'"; else
    echo "page lacks: '$want'" >&2; ok=0; fi
done
[ "$ok" = 1 ] || exit 1
