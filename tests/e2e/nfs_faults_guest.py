"""Runs inside the QEMU guest: NFS faults under the agent, with a real kernel client against ganesha.

argv: CONTROL_URL EXPORT TAG. The test's control server on the host re-creates the export
directory (`/stale`: the client's handle goes stale), stops ganesha (`/stop`) and resumes it
(`/cont`). A virtiofs share (TAG) is the other filesystem that must go on. Prints one
FAULT-RESULT line.
"""

import json
import sys
import time

from guest_agent import GuestAgent, mount_fields, post

CONTROL, EXPORT, TAG = sys.argv[1], sys.argv[2], sys.argv[3]
# Long enough that `status`, begun 1 s into the pass, ends while the pass waits: forked (guest_agent.py), it
# answered in 0.6-0.9 s on the emulated CPU (a fresh interpreter took 9 s there, when this was 20).
PROBE_TIMEOUT = 10
NFS_MP, OTHER_MP = "/mnt/share/nfs", "/mnt/share/other"
OPTIONS = ["vers=4.2", "port=2049", "noac"]  # noac: the probe asks the server, not the attribute cache
agent = GuestAgent("/mnt/sfs-faults", f"probe_timeout = {PROBE_TIMEOUT}\n[file]\npath = /mnt/sfs-faults/doc.json\n",
                   mount_timeout=30)  # fmt: skip
NFS = {"name": "nfs", "fs_type": "nfs", "export": EXPORT, "mount_point": NFS_MP, "mount_options": OPTIONS}
OTHER = {"name": "other", "fs_type": "virtiofs", "export": TAG, "mount_point": OTHER_MP}


def once():
    return agent.once(tail=1200)


def control(action):
    return post(f"{CONTROL}/{action}")


def mount_id(mp):
    fields = mount_fields(mp)
    return int(fields[0]) if fields else None


def states():
    _, out, _ = agent.run("status", "--json", timeout=20)
    return {fs["name"]: [fs["state"], fs.get("detail", "")] for fs in json.loads(out)["filesystems"]}


result = {}
agent.desire(NFS)
result["attach_rc"], result["attach_log"] = once()
first = mount_id(NFS_MP)
result["mounted"] = first is not None
# Stale handle: the export directory removed and re-created under the mounted client.
result["stale_control"] = control("stale")
result["stale_rc"], result["stale_log"] = once()
second = mount_id(NFS_MP)  # the kernel may give the new mount the old one's id
result["mounted_after_stale"] = second is not None
try:
    with open(f"{NFS_MP}/marker.txt") as f:
        result["read_after_remount"] = f.read()
except OSError as e:
    result["read_after_remount"] = str(e)
# A server that stops answering: reported, left alone; the other filesystem and status go on.
result["stop_control"] = control("stop")
agent.desire(NFS, OTHER)
start = time.monotonic()
proc = agent.start("once")
time.sleep(1)
status_start = time.monotonic()
result["status_during"] = states()
result["status_seconds"] = time.monotonic() - status_start
result["pass_still_waiting_when_status_answered"] = proc.poll() is None
_, log = proc.communicate(timeout=120)
result["dead_rc"], result["dead_log"], result["dead_seconds"] = proc.returncode, log[-1200:], time.monotonic() - start
result["probe_timeout"] = PROBE_TIMEOUT
result["dead_states"] = states()
result["nfs_left_alone"] = mount_id(NFS_MP) == second
result["other_mounted"] = mount_id(OTHER_MP) is not None
result["cont_control"] = control("cont")
result["recovered_rc"], result["recovered_log"] = once()
agent.desire()
result["detach_rc"], result["detach_log"] = once()
result["after"] = [mount_id(NFS_MP), mount_id(OTHER_MP)]
print("FAULT-RESULT " + json.dumps(result), flush=True)
