"""Runs inside the QEMU guest (the host's Python on the guest's kernel): the agent against a real NFS client.

argv: VERSION EXPORT. Attaches the export through `sharedfs-agent once`, checks the kernel
mounted it, writes a file through it, detaches, checks it is gone; prints one GUEST-RESULT line.
"""

import json
import sys

from guest_agent import GuestAgent, kernel_type

VERSION, EXPORT = sys.argv[1], sys.argv[2]
MP = "/mnt/share/data"
options = [f"vers={VERSION}", "proto=tcp", "port=2049"]
if VERSION == "3":
    options += ["mountport=20048", "mountproto=tcp", "nolock"]  # no rpcbind is forwarded in
BASE = f"/mnt/sfs-v{VERSION}"  # on the guest's tmpfs; one per version, as they share a boot
agent = GuestAgent(BASE, f"[file]\npath = {BASE}/doc.json\n")


result = {"version": VERSION}
agent.desire({"name": "share", "fs_type": "nfs", "export": EXPORT, "mount_point": MP, "mount_options": options})
result["attach_rc"], result["attach_log"] = agent.once()
result["fstype"] = kernel_type(MP)
result["wrote"] = False
if result["fstype"] in ("nfs", "nfs4"):  # never write into the directory under a failed mount
    try:
        with open(f"{MP}/from-guest-v{VERSION}.txt", "w") as f:
            f.write(f"written by the guest kernel's NFS v{VERSION} client\n")
        result["wrote"] = True
    except OSError as e:
        result["wrote"] = str(e)
result["lines_attached"] = agent.our_lines()
agent.desire()
result["detach_rc"], result["detach_log"] = agent.once()
result["fstype_after"] = kernel_type(MP)
with open(f"{agent.base}/fstab") as f:
    result["fstab_after"] = f.read()
print("GUEST-RESULT " + json.dumps(result), flush=True)
