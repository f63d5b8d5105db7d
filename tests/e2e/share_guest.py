"""Runs inside the QEMU guest (the host's Python on the guest's kernel): the agent against a real kernel client.

argv: FS_TYPE EXPORT [OPTION …]. Attaches the export through `sharedfs-agent once`, checks the
kernel mounted it, writes a file through it, detaches, checks it is gone; prints one GUEST-RESULT line.
"""

import json
import subprocess
import sys

FS_TYPE, EXPORT, OPTIONS = sys.argv[1], sys.argv[2], sys.argv[3:]
BASE = "/mnt/sfs"  # a tmpfs in the guest
MP = "/mnt/share/data"
subprocess.run(["mkdir", "-p", f"{BASE}/state"], check=True)
with open(f"{BASE}/fstab", "w") as f:
    f.write("# guest fstab\n")
with open(f"{BASE}/agent.conf", "w") as f:
    f.write(
        f"[agent]\nsource = file\nstate_dir = {BASE}/state\nfstab = {BASE}/fstab\nallowed_roots = /mnt/share\n"
        f"mount_timeout = 60\n[file]\npath = {BASE}/doc.json\n"
    )


def desire(entries):
    with open(f"{BASE}/doc.json", "w") as f:
        json.dump({"filesystems": entries}, f)


def once():
    run = subprocess.run([sys.executable, "-m", "sharedfs_agent", "once", "--config", f"{BASE}/agent.conf"],
                         capture_output=True, text=True)  # fmt: skip
    return run.returncode, run.stderr[-800:]


def mounted():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == MP:
                return fields[fields.index("-") + 1]
    return None


result = {"fs_type": FS_TYPE}
desire([{"name": "share", "fs_type": FS_TYPE, "export": EXPORT, "mount_point": MP, "mount_options": OPTIONS}])
result["attach_rc"], result["attach_log"] = once()
result["fstype"] = mounted()
result["wrote"] = False
if result["fstype"] is not None:  # never write into the directory under a failed mount
    try:
        with open(f"{MP}/from-guest.txt", "w") as f:
            f.write(f"written by the guest kernel's {FS_TYPE} client\n")
        result["wrote"] = True
    except OSError as e:
        result["wrote"] = str(e)
with open(f"{BASE}/fstab") as f:
    result["lines_attached"] = [line for line in f if "x-sharedfs-agent" in line]
result["converged_rc"], _ = once()
desire([])
result["detach_rc"], result["detach_log"] = once()
result["fstype_after"] = mounted()
with open(f"{BASE}/fstab") as f:
    result["fstab_after"] = f.read()
print("GUEST-RESULT " + json.dumps(result), flush=True)
