#!/usr/bin/python3
"""vendor-data only: write the instance's sharedfs token, given as instance metadata, to /etc/sharedfs-agent/token (0600)."""

import json
import os
import sys

KEY = "sharedfs_token"
with open("/run/cloud-init/instance-data-sensitive.json", encoding="utf-8") as f:
    data = json.load(f)
token = (((data.get("ds") or {}).get("meta_data") or {}).get("meta") or {}).get(KEY)
if not isinstance(token, str) or not token.strip():
    # Not an error: in a cloud with Nova's dynamic vendordata the agent enrolls itself from
    # openstack/latest/vendor_data2.json and writes the token file.
    print(f"token-from-metadata: no instance metadata {KEY!r}; the agent enrolls by Nova's vendordata")
    sys.exit(0)
fd = os.open("/etc/sharedfs-agent/token", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as f:
    f.write(token.strip() + "\n")
