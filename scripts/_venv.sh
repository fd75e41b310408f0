# Sourced by quickstart.sh and test.sh: create .venv if absent and install budgetgym into it
# with its training, sweep (Ray Tune, Optuna) and test extras. The CPU build of torch is pinned
# by constraints.txt (an unpinned torch pulls a multi-GB CUDA build), so it is installed first.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# Re-install only when pyproject.toml changed since the last install.
STAMP=.venv/.budgetgym-installed
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || [ constraints.txt -nt "$STAMP" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -c constraints.txt torch==2.13.0
  .venv/bin/python -m pip install --quiet -c constraints.txt -e ".[train,sweep,dev]"
  touch "$STAMP"
fi
export PATH="$ROOT/.venv/bin:$PATH"
