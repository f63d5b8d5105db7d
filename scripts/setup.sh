#!/usr/bin/env bash
# Set up a machine for sharedfs: Debian packages (as root), then .venv with the project and its dev tools.
# Idempotent: a second run installs nothing new. Used by demo.sh and test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

# glusterfs-server: a real glusterd for the demo and the tests; glusterfs-client: the FUSE client
# (mount.glusterfs) the agent drives; util-linux/mount: findmnt (reference parser), unshare, nsenter,
# runuser; iproute2: network namespaces for remote-client tests; postgresql: the API's scale-out tests;
# systemd-container + debootstrap: the install test boots a Debian container with systemd and cloud-init;
# qemu-system-x86, busybox-static, kmod, nfs-common, nfs-ganesha(-vfs), rpcbind: a real kernel NFS client in a guest;
# rabbitmq-server: the broker Nova's notifications come through (the suite runs a private node on loopback;
# the Debian service is never started). Keystone comes from PyPI, in a venv the suite makes and caches.
# ceph-mon ceph-mgr ceph-osd ceph-mds: a throw-away single-node Ceph cluster (devtools/ceph.py) for the tests;
# ceph-fuse (ceph-fuse, mount.fuse.ceph) and ceph-common (mount.ceph, /etc/ceph): the clients the agent drives.
# btrfs-progs + dbus-daemon + libnfs-utils: the nfs driver's tests (a btrfs subvolume per export with a qgroup
# limit, ganesha's D-Bus on a private bus, libnfs as the NFS client: the host kernel has none).
# chromium + chromium-driver: the dashboard's browser tests drive a real headless Chromium with Selenium
# (Debian's build: nothing is downloaded at test time).
PACKAGES=(glusterfs-server glusterfs-client util-linux mount iproute2 postgresql systemd-container debootstrap
          qemu-system-x86 busybox-static kmod nfs-common nfs-ganesha nfs-ganesha-vfs rpcbind rabbitmq-server
          python3 python3-venv ceph-mon ceph-mgr ceph-osd ceph-mds ceph-fuse ceph-common
          chromium chromium-driver btrfs-progs dbus-daemon libnfs-utils)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -q >/dev/null
  # glusterfs-server's postinst cannot reach systemd here and says so; glusterd is started by the tests.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' || { echo "setup: $PYTHON is older than 3.9" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# pip takes ~20 s even when everything is installed (it rebuilds both editable wheels): skip it while
# what it reads is unchanged. The editable installs pick up code changes without pip.
inputs=$(cat pyproject.toml packaging/sharedfs-agent/pyproject.toml sharedfs_api/__init__.py sharedfs_agent/__init__.py \
         scripts/setup.sh | sha256sum | cut -d' ' -f1)-$(.venv/bin/python -c 'import sys; print(sys.version)' | sha256sum | cut -c1-16)
stamp=.venv/.sharedfs-setup
if [ "$(cat "$stamp" 2>/dev/null)" != "$inputs" ]; then
  rm -f "$stamp"
  # A fresh clone (CI) spent most of its set-up in pip reading the package indexes: the wheels of the
  # dependencies are kept in the tests' cache, keyed by what decides them (both pyproject.toml files,
  # pip's constraints, the Python), and installed from there without an index (25 s instead of 55 s).
  # Only where the cache is writable (root); anything wrong with it falls back to the indexes.
  cache=${SHAREDFS_TEST_CACHE:-/var/cache/sharedfs-tests}
  key=$(cat pyproject.toml packaging/sharedfs-agent/pyproject.toml /etc/xdg/pip/constraints.txt 2>/dev/null | sha256sum | cut -c1-16)
  wheels="$cache/wheels-$key-$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  pip=(.venv/bin/python -m pip install -q --no-compile --disable-pip-version-check)
  if [ ! -d "$wheels" ] && mkdir -p "$cache" 2>/dev/null && [ -w "$cache" ]; then
    tmp=$(mktemp -d "$cache/.wheels-XXXXXX")
    if .venv/bin/python -m pip wheel -q --disable-pip-version-check -w "$tmp" \
         -e packaging/sharedfs-agent -e '.[dev]' setuptools wheel 2>&1 | grep -v "is ignored: it is neither" >&2; [ "${PIPESTATUS[0]}" -eq 0 ]; then
      rm -f "$tmp"/sharedfs-*.whl "$tmp"/sharedfs_agent-*.whl  # the project: from its source tree
      mv -T "$tmp" "$wheels" 2>/dev/null || rm -rf "$tmp"  # another set-up made it first
    else
      rm -rf "$tmp"
    fi
  fi
  # --no-compile: pip byte-compiles every file of every package (some 20 s of CPU); Python compiles the
  # modules actually imported at their first import, and keeps the bytecode unless PYTHONDONTWRITEBYTECODE
  # is set (as on the CI machines: the tests then keep it in their own cache, tests/conftest.py).
  if ! { [ -d "$wheels" ] && "${pip[@]}" --no-index --find-links "$wheels" -e packaging/sharedfs-agent -e '.[dev]'; }; then
    "${pip[@]}" -e packaging/sharedfs-agent -e '.[dev]' 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
  fi
fi
# Fails loudly if the install did not happen; only then is the install remembered (the next run retries).
.venv/bin/python -c 'import sharedfs_agent, sharedfs_api, pytest, hypothesis'
echo "$inputs" > "$stamp"
echo "setup: ready (.venv/bin/sharedfs-agent $(.venv/bin/python -c 'import sharedfs_agent; print(sharedfs_agent.__version__)'))"
