"""A user-space NFSv4 client (libnfs through ctypes): mount an export, write a file, say which errno came back.

The host kernel has no NFS client; run from a network namespace, this is a client with its own
address, judged by what the server answers (`python -m devtools.nfsclient SERVER /EXPORT FILE BYTES`)."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import re
import sys

# libnfs 4.0 encodes a v4 COMPOUND into a buffer of about 4 KiB: a 3900-byte WRITE went out, 3968 bytes
# failed with "Failed to encode COMPOUND4args" (measured against ganesha); nfs_get_writemax says 0 on v4.
CHUNK = 3584


def _lib() -> ctypes.CDLL:
    lib = ctypes.CDLL(ctypes.util.find_library("nfs") or "libnfs.so.13", use_errno=True)
    lib.nfs_init_context.restype = ctypes.c_void_p
    lib.nfs_get_error.restype = ctypes.c_char_p
    lib.nfs_get_error.argtypes = [ctypes.c_void_p]
    lib.nfs_set_version.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.nfs_mount.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    # nfs_creat opens read-only on v4 (its WRITEs come back NFS4ERR_OPENMODE); nfs_create takes the flags.
    lib.nfs_create.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int,
                               ctypes.POINTER(ctypes.c_void_p)]  # fmt: skip
    # libnfs13 (4.0, Debian 12): nfs_write(nfs, fh, count, buf); (buf, count) segfaults (measured).
    lib.nfs_write.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_char_p]
    lib.nfs_fsync.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.nfs_close.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.nfs_destroy_context.argtypes = [ctypes.c_void_p]
    return lib


def _name(rc: int) -> str:
    return errno.errorcode.get(-rc, str(rc)) if rc < 0 else "OK"


def _status(out: dict) -> dict:
    """The server's NFS4ERR_* named in libnfs's message: libnfs 4.0 maps NFS4ERR_DQUOT to ERANGE, not EDQUOT."""
    found = re.search(r"NFS4ERR_[A-Z_]+", out["error"])
    out["status"] = found.group(0) if found else ("NFS4_OK" if out["write"] == "OK" else "")
    return out


def write(server: str, export: str, path: str, size: int) -> dict:
    """{"mount": "OK" or an errno name, "write": ..., "status": NFS4ERR_*, "written": bytes the server accepted}."""
    lib = _lib()
    nfs = lib.nfs_init_context()
    out = {"mount": "", "write": "", "status": "", "written": 0, "error": ""}
    try:
        lib.nfs_set_version(nfs, 4)
        rc = lib.nfs_mount(nfs, server.encode(), export.encode())
        out["mount"] = _name(rc)
        if rc < 0:
            out["error"] = (lib.nfs_get_error(nfs) or b"").decode()
            return _status(out)
        fh = ctypes.c_void_p()
        rc = lib.nfs_create(nfs, path.encode(), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, ctypes.byref(fh))
        if rc < 0:
            out["write"], out["error"] = _name(rc), (lib.nfs_get_error(nfs) or b"").decode()
            return _status(out)
        block = b"x" * CHUNK
        while out["written"] < size:
            n = min(CHUNK, size - out["written"])
            rc = lib.nfs_write(nfs, fh, n, block[:n])
            if rc < 0:
                break
            out["written"] += rc
        if rc >= 0:
            rc = lib.nfs_fsync(nfs, fh)
        out["write"] = _name(rc)
        if rc < 0:
            out["error"] = (lib.nfs_get_error(nfs) or b"").decode()
        lib.nfs_close(nfs, fh)
        return _status(out)
    finally:
        lib.nfs_destroy_context(nfs)


if __name__ == "__main__":
    print(json.dumps(write(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))))
