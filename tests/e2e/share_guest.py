"""Runs inside the QEMU guest (the host's Python on the guest's kernel): the agent against a real kernel client.

argv: FS_TYPE EXPORT [OPTION …]. Attaches the export through `sharedfs-agent once`, checks the
kernel mounted it, writes a file through it, detaches, checks it is gone; prints one GUEST-RESULT line.
"""

import json
import sys

from guest_agent import GuestAgent, kernel_type

FS_TYPE, EXPORT, OPTIONS = sys.argv[1], sys.argv[2], sys.argv[3:]
MP = "/mnt/share/data"
agent = GuestAgent("/mnt/sfs", "[file]\npath = /mnt/sfs/doc.json\n")  # /mnt is the guest's tmpfs


result = {"fs_type": FS_TYPE}
agent.desire({"name": "share", "fs_type": FS_TYPE, "export": EXPORT, "mount_point": MP, "mount_options": OPTIONS})
result["attach_rc"], result["attach_log"] = agent.once()
result["fstype"] = kernel_type(MP)
result["wrote"] = False
if result["fstype"] is not None:  # never write into the directory under a failed mount
    try:
        with open(f"{MP}/from-guest.txt", "w") as f:
            f.write(f"written by the guest kernel's {FS_TYPE} client\n")
        result["wrote"] = True
    except OSError as e:
        result["wrote"] = str(e)
result["lines_attached"] = agent.our_lines()
result["converged_rc"], _ = agent.once()
agent.desire()
result["detach_rc"], result["detach_log"] = agent.once()
result["fstype_after"] = kernel_type(MP)
with open(f"{agent.base}/fstab") as f:
    result["fstab_after"] = f.read()
print("GUEST-RESULT " + json.dumps(result), flush=True)
