#!/bin/busybox sh
# PID 1 of a throw-away QEMU guest: the HOST's / is mounted read-only over virtio-9p at /host,
# with fresh proc/sys/dev, a tmpfs /run and /mnt, and an overlay /tmp, then guest_cmd=<absolute
# path of a host file> runs chrooted into /host: the host's Python and tools on the guest's
# kernel. Used to test the agent against a real kernel NFS client. Powers off when done.
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
arg() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" /proc/cmdline; }
for m in $(cat /modules.list); do insmod /lib/modules/$m 2>/dev/null; done
ip link set lo up; ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0
mkdir -p /host
# multidevs=remap (set on the host side): /proc, /dev … of the host share inode numbers otherwise.
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose hostroot /host || { echo "GUEST: 9p mount FAILED"; poweroff -f; }
mount -t proc proc /host/proc; mount -t sysfs sys /host/sys; mount -t devtmpfs dev /host/dev
mount -t tmpfs tmpfs /host/run
mkdir -p /scratch; mount -t tmpfs tmpfs /scratch; mkdir -p /scratch/tmp-up /scratch/tmp-work
mount -t overlay overlay -o lowerdir=/host/tmp,upperdir=/scratch/tmp-up,workdir=/scratch/tmp-work /host/tmp \
  || mount -t tmpfs tmpfs /host/tmp
mount -t tmpfs tmpfs /host/mnt
chroot /host $(arg guest_cmd); rc=$?
echo "GUEST: guest_cmd exit code $rc"
sync
poweroff -f
