"""Runs inside the QEMU guest (the host's Python on the guest's kernel): the agent against a real kernel client.

argv: [--remount-to EXPORT2] FS_TYPE EXPORT [OPTION …], or --entry FILE SECRET_DIR. Attaches the
export through `sharedfs-agent once`, checks the kernel mounted it, writes a file through it; with
--remount-to, desires EXPORT2 at the same mount point (a remount) and writes another file; detaches,
checks it is gone; prints one GUEST-RESULT line. With --entry, the entry desired is FILE's (one
element of an instance's view, as the API gave it, its `secret` included; mount point /mnt/share/data),
the agent writes secrets to SECRET_DIR, and the result says the secret file's mode and owner and
where else in the guest the secret shows (the agent's whole logs, fstab, state, mount table), while
mounted and after the detach.
"""

import glob
import json
import os
import sys

from guest_agent import GuestAgent, kernel_type, mount_fields

args = sys.argv[1:]
REMOUNT_TO = ENTRY = None
SECRET_DIR = "/etc/ceph"
if args[:1] == ["--remount-to"]:
    REMOUNT_TO, args = args[1], args[2:]
if args[:1] == ["--entry"]:
    with open(args[1]) as f:
        ENTRY = json.load(f)
    SECRET_DIR, args = args[2], [ENTRY["fs_type"], ENTRY["export"], *ENTRY["mount_options"]]
FS_TYPE, EXPORT, OPTIONS = args[0], args[1], args[2:]
MP = "/mnt/share/data"
agent = GuestAgent("/mnt/sfs", f"secret_dir = {SECRET_DIR}\n[file]\npath = /mnt/sfs/doc.json\n")  # /mnt: tmpfs
LOGS = []  # every pass's whole log, searched for the secret


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


def once():
    rc, log = agent.once(tail=10**6)
    LOGS.append(log)
    return rc, log[-800:]


def desire(export: str) -> None:
    if ENTRY is not None:
        return agent.desire(ENTRY)
    agent.desire({"name": "share", "fs_type": FS_TYPE, "export": export, "mount_point": MP, "mount_options": OPTIONS})


def secret_seen_in(secret: str) -> list:
    """Where in the guest the secret shows, its own file apart."""
    places = {"agent log": "".join(LOGS)}
    for path in [f"{agent.base}/fstab", "/proc/mounts", "/proc/self/mountinfo", *glob.glob(f"{agent.base}/state/*")]:
        with open(path) as f:
            places[path] = f.read()
    return sorted(place for place, text in places.items() if secret in text)


result = {"fs_type": FS_TYPE, "from": "view" if ENTRY else "argv"}
desire(EXPORT)
result["attach_rc"], result["attach_log"] = once()
if ENTRY is not None:
    secret_file = f"{SECRET_DIR}/sharedfs-{ENTRY['name']}.secret"
    st = os.stat(secret_file)
    with open(secret_file) as f:
        result["secret_file"] = [secret_file, oct(st.st_mode & 0o777), st.st_uid, f.read() == ENTRY["secret"] + "\n"]
result["fstype"], result["source"] = kernel_type(MP), source()
result["wrote"] = write("from-guest.txt", f"written by the guest kernel's {FS_TYPE} client\n")
result["lines_attached"] = agent.our_lines()
result["converged_rc"], _ = once()
if ENTRY is not None:  # while wanted, the last-known-good document holds it too (0600, root only)
    result["secret_seen_mounted"] = secret_seen_in(ENTRY["secret"])
    result["cache_mode"] = oct(os.stat(f"{agent.base}/state/desired-file.json").st_mode & 0o777)
if REMOUNT_TO is not None:
    desire(REMOUNT_TO)
    result["remount_rc"], result["remount_log"] = once()
    result["fstype_remounted"], result["source_remounted"] = kernel_type(MP), source()
    result["wrote_remounted"] = write("from-guest-remounted.txt", f"written after the {FS_TYPE} remount\n")
    result["lines_remounted"] = agent.our_lines()
agent.desire()
result["detach_rc"], result["detach_log"] = once()
result["fstype_after"] = kernel_type(MP)
with open(f"{agent.base}/fstab") as f:
    result["fstab_after"] = f.read()
if ENTRY is not None:
    result["secret_seen_after"] = secret_seen_in(ENTRY["secret"])
    result["secret_file_after"] = os.path.exists(secret_file)
print("GUEST-RESULT " + json.dumps(result), flush=True)
