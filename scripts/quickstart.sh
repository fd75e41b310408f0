#!/usr/bin/env bash
# Set up .venv (if needed) and run the main job: simulate a few held-out campaigns.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
budgetgym list-scenarios
budgetgym simulate --scenario mixed --campaigns 8
