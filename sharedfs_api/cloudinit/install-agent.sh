#!/bin/sh
# Install sharedfs-agent on a booting instance (run by cloud-init runcmd; safe to run again).
# Arguments: INDEX_URL [CA_FILE] [FS_TYPE ...]. Needs no package index but the one given (the
# API serves the agent's wheel); client packages come from the distribution.
set -eu
INDEX_URL=$1; shift
CA_FILE=${1:-}; [ $# -gt 0 ] && shift

# The distribution's names for what each filesystem type needs on this instance.
packages_debian="python3 python3-venv python3-psutil"
packages_rhel="python3 python3-psutil"
for fs in "$@"; do
  case "$fs" in
    glusterfs) packages_debian="$packages_debian glusterfs-client"; packages_rhel="$packages_rhel glusterfs-fuse" ;;
    nfs)       packages_debian="$packages_debian nfs-common";       packages_rhel="$packages_rhel nfs-utils" ;;
    cephfs)    packages_debian="$packages_debian ceph-common";      packages_rhel="$packages_rhel ceph-common" ;;
    lustre)    ;;  # the Lustre client comes from the site's own repository
    *) echo "install-agent: unknown filesystem type $fs" >&2; exit 2 ;;
  esac
done

if command -v dpkg-query >/dev/null 2>&1; then
  missing=""
  for p in $packages_debian; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
  fi
elif command -v dnf >/dev/null 2>&1; then
  rpm -q $packages_rhel >/dev/null 2>&1 || dnf install -y $packages_rhel
elif command -v yum >/dev/null 2>&1; then
  rpm -q $packages_rhel >/dev/null 2>&1 || yum install -y $packages_rhel
else
  echo "install-agent: no apt, dnf or yum; install $packages_debian by hand" >&2
  exit 2
fi

# A venv that sees the distribution's psutil, so nothing but the agent comes from the index.
[ -x /opt/sharedfs-agent/bin/python3 ] || python3 -m venv --system-site-packages /opt/sharedfs-agent
CERT=""; [ -n "$CA_FILE" ] && CERT="--cert $CA_FILE"
/opt/sharedfs-agent/bin/python3 -m pip install --quiet --disable-pip-version-check --no-deps \
  --upgrade --index-url "$INDEX_URL" $CERT sharedfs
systemctl daemon-reload
systemctl enable --now sharedfs-agent.service
