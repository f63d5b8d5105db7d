"""Runs inside the QEMU guest: the agent's nova-shares source against a loopback metadata service.

argv: METADATA_URL TAG. The metadata service lists a share device with TAG; `sharedfs-agent once`
must mount it (virtiofs) below the configured root; the guest then asks the test's server to drop
the device, and the next pass must unmount it. Prints one NOVA-RESULT line.
"""

import json
import sys

from guest_agent import GuestAgent, mount_fields, post

URL, TAG = sys.argv[1], sys.argv[2]
ROOT = "/mnt/share/nova"
MP = f"{ROOT}/{TAG}"
agent = GuestAgent("/mnt/sfs-nova", f"[nova-shares]\nmetadata_url = {URL}\nmount_root = {ROOT}\n",
                   source="nova-shares")  # on the guest's tmpfs /mnt  # fmt: skip


def mounted():
    """[kernel type, source] at MP, or None."""
    fields = mount_fields(MP)
    return fields[fields.index("-") + 1 :][:2] if fields else None


result = {}
result["attach_rc"], result["attach_log"] = agent.once()
result["mounted"] = mounted()
try:
    with open(f"{MP}/host.txt") as f:
        result["read"] = f.read()
except OSError as e:
    result["read"] = str(e)
result["lines_attached"] = agent.our_lines()
result["detached_on_server"] = post(f"{URL}/test/devices", b"[]", timeout=10)
result["detach_rc"], result["detach_log"] = agent.once()
result["mounted_after"] = mounted()
with open(f"{agent.base}/fstab") as f:
    result["fstab_after"] = f.read()
print("NOVA-RESULT " + json.dumps(result), flush=True)
