"""util-linux findmnt as the reference parser for mountinfo and fstab files."""

from __future__ import annotations

import json
import subprocess
from typing import List

COLUMNS = "ID,PARENT,MAJ:MIN,FSROOT,TARGET,FSTYPE,VFS-OPTIONS,FS-OPTIONS,SOURCE,OPT-FIELDS"


def mountinfo(path: str) -> List[dict]:
    out = subprocess.run(
        ["findmnt", "-F", path, "--json", "--list", "-o", COLUMNS], check=True, capture_output=True, text=True
    ).stdout
    rows = json.loads(out)["filesystems"] if out.strip() else []
    for row in rows:
        # findmnt shows a bind mount's source as "dev[/fsroot]"; the kernel field is "dev".
        suffix = f"[{row['fsroot']}]"
        if row["source"] and row["fsroot"] != "/" and row["source"].endswith(suffix):
            row["source"] = row["source"][: -len(suffix)]
    return rows


def fstab(path: str) -> List[dict]:
    out = subprocess.run(
        ["findmnt", "-F", path, "--json", "--list", "-o", "SOURCE,TARGET,FSTYPE,OPTIONS,FREQ,PASSNO"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)["filesystems"] if out.strip() else []
