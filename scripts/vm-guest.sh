#!/usr/bin/env bash
# The default guest of the `vm` executor: a Debian cloud kernel and a busybox initramfs. Idempotent.
#
#   scripts/vm-guest.sh [DIR]     build (or find) the guest in DIR and print its two paths
#
# DIR defaults to $NUNET_VM_GUEST_DIR, else ~/.cache/nunet/vm-guest (where the executor looks).
# No registry is involved: everything comes from Debian packages.
#   - qemu-system-x86 and busybox-static are installed with apt-get only when missing;
#   - the kernel is the real versioned package that linux-image-cloud-amd64 depends on, fetched
#     with `apt-get download` and unpacked with `dpkg-deb -x` (never installed);
#   - the initramfs (newc cpio, gzip) holds the static busybox, the virtio modules the cloud kernel
#     builds as modules (virtio, virtio_ring, virtio_mmio, virtio_console, virtio_blk; and, loaded
#     only when the VM is on a subnet, failover, net_failover, virtio_net) and /init.
#
# /init, in the guest: mounts proc, sys and dev, loads the modules, turns on memory overcommit (a
# workload touching more than the VM's RAM is OOM-killed, as at a container's limit), and runs the workload with
# stdout and stderr on the serial console (the allocation's log). The workload is the script
# /nunet/run, which the executor puts in a small cpio archive appended to the initramfs (the
# kernel unpacks concatenated archives); without it, the words after `--` on the kernel command
# line (Linux hands them to init as arguments). With neither, a root disk (/dev/vda, e.g. a
# Go-style `root_file_system`) that has /sbin/init is booted with switch_root. The workload's exit
# status is written as one line `exit=<code> oom=<oom kills>` to the virtio-serial port named
# org.nunet.exit (the host never reads the console to learn it); then the guest powers off.
# A VM on its ensemble's subnet also gets /nunet/net in that archive (NUNET_NET_ADDRESS=ip/prefix,
# NUNET_NET_GATEWAY, NUNET_NET_MTU): /init then loads the network modules, brings lo and eth0 up
# with that address (the prefix route covers the subnet; there is no default route: the subnet is
# all a VM reaches) and writes /etc/resolv.conf (the gateway's resolver, search `internal`), before
# the workload runs. A VM without it boots exactly as before (no network modules loaded).
#
# The files are rebuilt when GUEST_FORMAT below changes or a file is missing; a cached guest costs
# no apt call at all. Output (last two lines of stdout): the kernel path, then the initramfs path.
set -euo pipefail

GUEST_FORMAT=3
DIR="${1:-${NUNET_VM_GUEST_DIR:-$HOME/.cache/nunet/vm-guest}}"
KERNEL="$DIR/vmlinuz"
INITRD="$DIR/initramfs.cpio.gz"
STAMP="$DIR/guest.stamp"
MODULES=(virtio_ring virtio virtio_mmio virtio_console virtio_blk)
NET_MODULES=(failover net_failover virtio_net)  # loaded by /init only for a VM on a subnet

say() { echo "vm-guest.sh: $*" >&2; }
die() { echo "vm-guest.sh: error: $*" >&2; exit 1; }

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_update() { $SUDO apt-get update -qq; }
apt_install() {
    [ $# -eq 0 ] && return 0
    say "installing Debian packages: $*"
    apt_update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" \
        >/dev/null
}

if [ -s "$KERNEL" ] && [ -s "$INITRD" ] && [ -f "$STAMP" ] \
    && grep -qx "format=$GUEST_FORMAT" "$STAMP" && command -v qemu-system-x86_64 >/dev/null; then
    say "guest is present in $DIR ($(grep '^kernel=' "$STAMP" | cut -d= -f2))"
    echo "$KERNEL"
    echo "$INITRD"
    exit 0
fi

need=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
apt_install "${need[@]}"
busybox=/bin/busybox
[ -x "$busybox" ] || busybox=$(command -v busybox) || die "busybox not found"
if ldd "$busybox" >/dev/null 2>&1; then
    die "$busybox is dynamically linked; install busybox-static"
fi

package=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null \
    | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$package" ]; then  # stale or empty package lists: refresh once, then ask again
    apt_update
    package=$(apt-cache depends linux-image-cloud-amd64 \
        | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
[ -n "$package" ] || die "no linux-image-cloud-amd64 in the apt sources"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say "fetching $package (apt-get download; not installed)"
(cd "$work" && apt-get download -q "$package" >/dev/null 2>&1) \
    || { apt_update; (cd "$work" && apt-get download -q "$package" >/dev/null); }
dpkg-deb -x "$work"/"$package"_*.deb "$work/pkg"
version=${package#linux-image-}
[ -f "$work/pkg/boot/vmlinuz-$version" ] || die "no /boot/vmlinuz-$version in $package"
moddir="$work/pkg/lib/modules/$version/kernel"

root="$work/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,mnt/rootfs,etc,lib/modules,nunet}
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
add_module() {  # add_module NAME LIST: copy NAME.ko and append it to /etc/LIST (load order)
    local m=$1 list=$2 ko dep
    ko=$(find "$moddir" -name "$m.ko" -print -quit)
    [ -n "$ko" ] || die "module $m.ko not found in $package"
    # Loaded in this order, so each module's dependencies must come before it.
    for dep in $(tr '\0' '\n' <"$ko" | sed -n 's/^depends=//p' | tr ',' ' '); do
        [ -f "$root/lib/modules/$dep.ko" ] || die "module $m needs $dep, which is not loaded before it"
    done
    cp "$ko" "$root/lib/modules/$m.ko"
    echo "$m" >>"$root/etc/$list"
}
for m in "${MODULES[@]}"; do add_module "$m" modules; done
for m in "${NET_MODULES[@]}"; do add_module "$m" modules.net; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"

cat >"$root/init" <<'INIT'
#!/bin/sh
# nunet vm guest init (see scripts/vm-guest.sh). Output of the workload goes to the console.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm /root && mount -t devpts devpts /dev/pts 2>/dev/null
stty -F /dev/console -opost 2>/dev/null   # no CR before each LF in the log
# Allocations succeed and the OOM killer stops a workload that touches more than the VM's RAM,
# as in a container at its memory limit (the heuristic default would fail large mallocs instead).
echo 1 >/proc/sys/vm/overcommit_memory
for m in $(cat /etc/modules); do insmod "/lib/modules/$m.ko" 2>/dev/null; done

port=""
find_port() {
    for p in /sys/class/virtio-ports/*; do
        [ "$(cat "$p/name" 2>/dev/null)" = org.nunet.exit ] && port="/dev/${p##*/}" && return 0
    done
    return 1
}
i=0
while ! find_port && [ $i -lt 100 ]; do usleep 20000; i=$((i + 1)); done

if [ -b /dev/vda ]; then
    mount /dev/vda /mnt/rootfs 2>/dev/null || mount -o ro /dev/vda /mnt/rootfs 2>/dev/null
fi
if [ -f /nunet/net ]; then
    # On the ensemble's subnet: eth0 (virtio-net, frames carried by the DMS) gets its address.
    . /nunet/net
    for m in $(cat /etc/modules.net); do insmod "/lib/modules/$m.ko" 2>/dev/null; done
    echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null
    i=0
    while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 250 ]; do usleep 20000; i=$((i + 1)); done
    ip link set lo up
    ip link set eth0 mtu "${NUNET_NET_MTU:-1420}" 2>/dev/null
    if ip addr add "$NUNET_NET_ADDRESS" dev eth0 && ip link set eth0 up; then
        printf 'nameserver %s\nsearch internal\n' "$NUNET_NET_GATEWAY" >/etc/resolv.conf
        echo '127.0.0.1 localhost' >/etc/hosts
    else
        net_failed=1
    fi
fi
[ -f /nunet/env ] && . /nunet/env

if [ -n "${net_failed:-}" ]; then  # as a container whose subnet interface never came
    echo "nunet-init: eth0 could not be configured with $NUNET_NET_ADDRESS" >&2
    code=125
elif [ -f /nunet/run ]; then
    sh /nunet/run </dev/null
    code=$?
elif [ $# -gt 0 ]; then
    "$@" </dev/null
    code=$?
elif [ -x /mnt/rootfs/sbin/init ]; then
    umount /proc /sys /dev/pts 2>/dev/null
    exec switch_root /mnt/rootfs /sbin/init
else
    echo "nunet-init: no workload (no /nunet/run, no arguments after -- on the kernel command line)" >&2
    code=127
fi
oom=$(awk '$1 == "oom_kill" {print $2}' /proc/vmstat 2>/dev/null)
[ -n "$port" ] && echo "exit=$code oom=${oom:-0}" >"$port"
sync
umount /mnt/rootfs 2>/dev/null
poweroff -f
reboot -f
INIT
chmod 755 "$root/init"

mkdir -p "$DIR"
(cd "$root" && find . | "$root/bin/busybox" cpio -o -H newc -R 0:0 2>/dev/null) | gzip -9 >"$work/initramfs.cpio.gz"
cp "$work/pkg/boot/vmlinuz-$version" "$work/vmlinuz"
mv -f "$work/vmlinuz" "$KERNEL"
mv -f "$work/initramfs.cpio.gz" "$INITRD"
printf 'format=%s\nkernel=%s\n' "$GUEST_FORMAT" "$package" >"$STAMP"
say "built the guest in $DIR ($package, initramfs $(du -k "$INITRD" | cut -f1) KiB)"
echo "$KERNEL"
echo "$INITRD"
