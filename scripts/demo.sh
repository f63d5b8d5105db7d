#!/usr/bin/env bash
# Quick start, the main job: set up, then attach / mount / report / detach a real GlusterFS volume.
# Run as root. The host's fstab and mount table are never touched (private mount namespace).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py
