#!/usr/bin/env bash
# The main job on a fresh machine: set up .venv (if needed), train a short PPO run on the `mixed`
# scenario, compare it with every baseline and the hindsight oracle on held-out campaigns, and
# end with a short verdict (per scenario: won, lost or tied against the best rule, with the
# paired GMV difference and the ROI misses), where the full tables and plots are, and the
# TensorBoard command.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
budgetgym list-scenarios
budgetgym train --config ppo_quick --run-dir "runs/quickstart-$(date +%Y%m%d-%H%M%S)"
