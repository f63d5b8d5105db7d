#!/usr/bin/env bash
# Quick start, the whole test suite: set up (Debian packages when root), then lint, layering and every test.
# With CI=true a missing prerequisite fails instead of skipping. Extra arguments go to pytest (one run, in order).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ $# -gt 0 ]; then
  exec .venv/bin/python -m pytest -ra "$@"
fi
# The unit tests share nothing: two processes (pytest-xdist) use both cores of the 2-core machines. Every
# other test shares session-wide real services (one glusterd per machine), so they run in one process after.
# Both runs happen even if the first fails; the exit status is the first failure's. The slowest twenty
# tests are listed at the end: the suite's budget is 20 minutes on these machines.
status=0
.venv/bin/python -m pytest -ra -n 2 tests/unit || status=$?
.venv/bin/python -m pytest -ra --durations=20 --ignore=tests/unit || { rc=$?; [ "$status" -ne 0 ] || status=$rc; }
exit "$status"
