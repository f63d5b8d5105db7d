"""A throw-away QEMU guest (TCG) running a host command on a real guest kernel, with an NFS server forwarded in.

The Debian kernel package is downloaded (not installed) and an initramfs is made from
busybox-static, the kernel modules for virtio, 9p and NFS, and the host's mount.nfs; both are
cached like the container root filesystem. The guest sees the host's / read-only over virtio-9p
and runs `guest_cmd` chrooted into it, so the agent under test is the host's own code. Its only
network is user-mode (restrict=on) with 10.0.2.100:2049 and :20048 forwarded to the host's
127.0.0.1: it can reach nothing else; or, for the CephFS kernel client, a tap device inside the
throw-away Ceph cluster's network namespace. KVM is not used: these machines' /dev/kvm is a nested
PVM one (kernel command line nested_pvm=1), where Debian's stock kernel hangs right after the
firmware (`-accel kvm`, tried 2026-11-27: no console line in 120 s) and `-cpu host` aborts on an MSR.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
from pathlib import Path
from typing import Optional, Sequence, Tuple

from .cache import CACHE

HERE = Path(__file__).resolve().parent
# virtiofs and ceph: the kernel clients of tests/e2e/test_virtiofs_qemu.py and the CephFS one.
MODULES = ("virtio_pci", "virtio_net", "nfsv4", "nfsv3", "9pnet_virtio", "9p", "overlay", "virtiofs", "ceph")


def kernel_and_initramfs() -> Tuple[Path, Path]:
    work = CACHE / "qemu-guest"
    work.mkdir(parents=True, exist_ok=True)
    depends = subprocess.run(["apt-cache", "depends", "linux-image-amd64"], capture_output=True, text=True,
                             check=True).stdout  # fmt: skip
    package = next(line.split()[1] for line in depends.splitlines() if line.strip().startswith("Depends: linux-image-"))
    release = package.removeprefix("linux-image-")
    kpkg = work / f"kpkg-{release}"
    kernel = kpkg / "boot" / f"vmlinuz-{release}"
    if not kernel.exists():
        shutil.rmtree(kpkg, ignore_errors=True)
        subprocess.run(["apt-get", "download", package], cwd=work, check=True, capture_output=True, timeout=900)
        (deb,) = glob.glob(str(work / f"{package}_*.deb"))
        subprocess.run(["dpkg-deb", "-x", deb, str(kpkg)], check=True)
        subprocess.run(["depmod", "-b", str(kpkg), release], check=True)
        Path(deb).unlink()
    initramfs = work / f"initramfs-{release}-{_init_digest()}.cpio.gz"
    if not initramfs.exists():
        _make_initramfs(kpkg, release, initramfs)
    return kernel, initramfs


def _init_digest() -> str:
    import hashlib

    # Keyed by every input: the init script and the module list.
    return hashlib.sha256((HERE / "guest-init.sh").read_bytes() + " ".join(MODULES).encode()).hexdigest()[:10]


def _make_initramfs(kpkg: Path, release: str, out: Path) -> None:
    root = out.with_suffix(".d")
    shutil.rmtree(root, ignore_errors=True)
    for d in ("bin", "sbin", "proc", "sys", "dev", "mnt", "tmp", "etc", "lib/modules"):
        (root / d).mkdir(parents=True)
    shutil.copy("/bin/busybox", root / "bin/busybox")
    names = []
    for module in MODULES:
        shown = subprocess.run(["modprobe", "-d", str(kpkg), "-S", release, "--show-depends", module],
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
        for line in shown.splitlines():
            if line.startswith("insmod"):
                path = line.split()[1]
                if Path(path).name not in names:
                    shutil.copy(path, root / "lib/modules")
                    names.append(Path(path).name)
    (root / "modules.list").write_text("\n".join(names) + "\n")
    shutil.copy(HERE / "guest-init.sh", root / "init")
    (root / "init").chmod(0o755)
    listing = subprocess.run(["sh", "-c", "find . | busybox cpio -o -H newc 2>/dev/null | gzip -1"], cwd=root,
                             capture_output=True, check=True).stdout  # fmt: skip
    out.write_bytes(listing)
    shutil.rmtree(root)


def run_guest(
    guest_cmd: str,
    console: Path,
    timeout: float = 600,
    virtiofs: Optional[Tuple[Path, str]] = None,
    forwards: Sequence[Tuple[int, int]] = (),
    tap: Optional[Tuple[str, str]] = None,
) -> str:
    """Boot, run guest_cmd (an absolute host path), power off; returns the console output.

    The guest reaches the host's loopback at 10.0.2.100: NFS's ports, and each (guest port, host
    port) of forwards (QEMU user networking's guestfwd, one busybox nc per connection).

    virtiofs=(socket, tag) plugs in a virtiofsd's share; vhost-user needs the guest's memory in a
    shared memfd, which QEMU only gives through a NUMA node.

    tap=(netns, device) plugs the guest's network into a tap device of that network namespace
    instead (QEMU runs inside it; no forwards): 10.0.2.100 is then whatever holds that address
    there, e.g. devtools/ceph.py's cluster, whose daemons tell clients their own addresses."""
    kernel, initramfs = kernel_and_initramfs()
    ports = [(2049, 2049), (20048, 20048), *forwards]
    guestfwd = ",".join(f"guestfwd=tcp:10.0.2.100:{guest}-cmd:busybox nc 127.0.0.1 {host}" for guest, host in ports)
    netdev = f"user,id=n0,restrict=on,{guestfwd}"
    if tap is not None:
        if forwards:
            raise ValueError("forwards need user networking; a tap guest reaches only its network namespace")
        netdev = f"tap,id=n0,ifname={tap[1]},script=no,downscript=no"
    argv = [
        "qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-smp", "1", "-nographic", "-no-reboot",
        "-kernel", str(kernel), "-initrd", str(initramfs),
        "-fsdev", "local,id=hr,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=hr,mount_tag=hostroot",
        "-append", f"console=ttyS0 panic=-1 loglevel=3 guest_cmd={guest_cmd}",
        "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0,romfile=",
    ]  # fmt: skip
    if virtiofs is not None:
        socket, tag = virtiofs
        argv += ["-object", "memory-backend-memfd,id=mem,size=1024M,share=on", "-numa", "node,memdev=mem",
                 "-chardev", f"socket,id=vfs,path={socket}", "-device", f"vhost-user-fs-pci,chardev=vfs,tag={tag}"]  # fmt: skip
    if tap is not None:
        argv = ["ip", "netns", "exec", tap[0], *argv]
    with open(console, "wb") as out:
        subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False)
    return console.read_text(errors="replace")
