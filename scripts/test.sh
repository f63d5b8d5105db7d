#!/usr/bin/env bash
# Quick start, the whole test suite: set up (Debian packages when root), then lint, layering and every test.
# With CI=true a missing prerequisite fails instead of skipping. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -ra "$@"
