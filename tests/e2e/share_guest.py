"""Runs inside the QEMU guest (the host's Python on the guest's kernel): the agent against a real kernel client.

argv: [--remount-to EXPORT2] FS_TYPE EXPORT [OPTION …]. Attaches the export through `sharedfs-agent
once`, checks the kernel mounted it, writes a file through it; with --remount-to, desires EXPORT2
at the same mount point (a remount) and writes another file; detaches, checks it is gone; prints
one GUEST-RESULT line.
"""

import json
import sys

from guest_agent import GuestAgent, kernel_type, mount_fields

args = sys.argv[1:]
REMOUNT_TO = None
if args[:1] == ["--remount-to"]:
    REMOUNT_TO, args = args[1], args[2:]
FS_TYPE, EXPORT, OPTIONS = args[0], args[1], args[2:]
MP = "/mnt/share/data"
agent = GuestAgent("/mnt/sfs", "[file]\npath = /mnt/sfs/doc.json\n")  # /mnt is the guest's tmpfs


def write(name: str, text: str):
    """True, or why writing through the mount failed; never into the directory under a failed mount."""
    if kernel_type(MP) is None:
        return False
    try:
        with open(f"{MP}/{name}", "w") as f:
            f.write(text)
        return True
    except OSError as e:
        return str(e)


def source():
    fields = mount_fields(MP)
    return fields[fields.index("-") + 2] if fields else None


def desire(export: str) -> None:
    agent.desire({"name": "share", "fs_type": FS_TYPE, "export": export, "mount_point": MP, "mount_options": OPTIONS})


result = {"fs_type": FS_TYPE}
desire(EXPORT)
result["attach_rc"], result["attach_log"] = agent.once()
result["fstype"], result["source"] = kernel_type(MP), source()
result["wrote"] = write("from-guest.txt", f"written by the guest kernel's {FS_TYPE} client\n")
result["lines_attached"] = agent.our_lines()
result["converged_rc"], _ = agent.once()
if REMOUNT_TO is not None:
    desire(REMOUNT_TO)
    result["remount_rc"], result["remount_log"] = agent.once()
    result["fstype_remounted"], result["source_remounted"] = kernel_type(MP), source()
    result["wrote_remounted"] = write("from-guest-remounted.txt", f"written after the {FS_TYPE} remount\n")
    result["lines_remounted"] = agent.our_lines()
agent.desire()
result["detach_rc"], result["detach_log"] = agent.once()
result["fstype_after"] = kernel_type(MP)
with open(f"{agent.base}/fstab") as f:
    result["fstab_after"] = f.read()
print("GUEST-RESULT " + json.dumps(result), flush=True)
