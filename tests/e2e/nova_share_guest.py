"""Runs inside the QEMU guest: the agent's nova-shares source against a loopback metadata service.

argv: METADATA_URL TAG. The metadata service lists a share device with TAG; `sharedfs-agent once`
must mount it (virtiofs) below the configured root; the guest then asks the test's server to drop
the device, and the next pass must unmount it. Prints one NOVA-RESULT line.
"""

import json
import subprocess
import sys
import urllib.request

URL, TAG = sys.argv[1], sys.argv[2]
BASE = "/mnt/sfs-nova"  # on the guest's tmpfs /mnt
ROOT = "/mnt/share/nova"
MP = f"{ROOT}/{TAG}"
subprocess.run(["mkdir", "-p", f"{BASE}/state"], check=True)
with open(f"{BASE}/fstab", "w") as f:
    f.write("# guest fstab\n")
with open(f"{BASE}/agent.conf", "w") as f:
    f.write(
        f"[agent]\nsource = nova-shares\nstate_dir = {BASE}/state\nfstab = {BASE}/fstab\nallowed_roots = /mnt/share\n"
        f"mount_timeout = 60\n[nova-shares]\nmetadata_url = {URL}\nmount_root = {ROOT}\n"
    )


def once():
    run = subprocess.run([sys.executable, "-m", "sharedfs_agent", "once", "--config", f"{BASE}/agent.conf"],
                         capture_output=True, text=True)  # fmt: skip
    return run.returncode, run.stderr[-800:]


def mounted():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == MP:
                return fields[fields.index("-") + 1 :][:2]
    return None


result = {}
result["attach_rc"], result["attach_log"] = once()
result["mounted"] = mounted()
try:
    with open(f"{MP}/host.txt") as f:
        result["read"] = f.read()
except OSError as e:
    result["read"] = str(e)
with open(f"{BASE}/fstab") as f:
    result["lines_attached"] = [line for line in f if "x-sharedfs-agent" in line]
request = urllib.request.Request(f"{URL}/test/devices", data=b"[]", method="POST")
with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as answer:
    result["detached_on_server"] = answer.status
result["detach_rc"], result["detach_log"] = once()
result["mounted_after"] = mounted()
with open(f"{BASE}/fstab") as f:
    result["fstab_after"] = f.read()
print("NOVA-RESULT " + json.dumps(result), flush=True)
