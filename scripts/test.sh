#!/usr/bin/env bash
# Set up .venv (if needed) and run the test suite. Extra arguments go to pytest.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
# --dist loadscope: a module's tests share one worker, so a module-scoped fixture (the planner's
# rollouts, the calibration's campaigns) is computed once, not once per worker.
python -m pytest -n 2 --dist loadscope "$@"
