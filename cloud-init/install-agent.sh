#!/bin/sh
# Install sharedfs-agent on a booting instance (run by cloud-init runcmd; safe to run again).
# Arguments: INDEX_URL [CA_FILE] [FS_TYPE ...]. Needs no package index but the one given (the
# API serves the agent's wheel); client packages come from the distribution, and the agent itself
# says which ones each filesystem type needs (`sharedfs-agent packages`), so no list lives here.
set -eu
INDEX_URL=$1; shift
CA_FILE=${1:-}; [ $# -gt 0 ] && shift

if command -v dpkg-query >/dev/null 2>&1; then
  family=debian
  install_packages() {
    missing=""
    for p in "$@"; do
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing; }
  }
elif command -v dnf >/dev/null 2>&1 || command -v yum >/dev/null 2>&1; then
  family=rhel
  install_packages() {
    [ $# -eq 0 ] || rpm -q "$@" >/dev/null 2>&1 || "$(command -v dnf || command -v yum)" install -y "$@"
  }
else
  echo "install-agent: no apt, dnf or yum; install python3, its venv module and psutil by hand" >&2
  exit 2
fi

# The agent's own needs first: a Python with venv, and the distribution's psutil.
if [ "$family" = debian ]; then install_packages python3 python3-venv python3-psutil; else install_packages python3 python3-psutil; fi

# A venv that sees the distribution's psutil, so nothing but the agent comes from the index.
[ -x /opt/sharedfs-agent/bin/python3 ] || python3 -m venv --system-site-packages /opt/sharedfs-agent
CERT=""; [ -n "$CA_FILE" ] && CERT="--cert $CA_FILE"
/opt/sharedfs-agent/bin/python3 -m pip install --quiet --disable-pip-version-check --no-deps \
  --upgrade --index-url "$INDEX_URL" $CERT sharedfs-agent

# Then the clients of the filesystem types this instance will mount (an unknown type stops here).
packages=$(/opt/sharedfs-agent/bin/sharedfs-agent packages --family "$family" "$@")
# shellcheck disable=SC2086 # one word per package
install_packages $packages
systemctl daemon-reload
systemctl enable --now sharedfs-agent.service
