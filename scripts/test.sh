#!/usr/bin/env bash
# Set up .venv if needed, then run the whole test suite (what CI runs).
set -euo pipefail
. "$(dirname "$0")/setup_env.sh"
python -m pytest -q "$@"
