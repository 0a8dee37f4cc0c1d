#!/usr/bin/env bash
# Build (or reuse) a Vagrant box for the libvirt provider from the VM tests' cached Debian image,
# laid out like the official debian/bookworm64 box: a bootable disk (MBR + extlinux), the
# "vagrant" account with Vagrant's published insecure key and passwordless sudo, sshd, rsync,
# DHCP on every wired interface. Nothing of the kit: `vagrant up` provisions that.
#
#   build_box.sh [CACHE_DIR]    prints the path of the .box file (its last line)
#
# The CI host reaches the package registries through a TLS-inspecting proxy: its extra CA
# certificates (/usr/local/share/ca-certificates) are baked in, as a site's own box would carry
# its proxy's CA. The box is cached next to the image, keyed by this script, the image and the CAs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${1:-/var/cache/ebpf_nb-vm}
log() { printf '[vagrant box] %s\n' "$*" >&2; }
die() { printf '[vagrant box] error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (loop devices, chroot)"
image=$(bash "$here/../vm/build_image.sh" "$cache_root" | tail -n 1)
insecure_key=$(find /usr/share/rubygems-integration /usr/share/vagrant /opt/vagrant -path '*keys/vagrant.pub' 2>/dev/null | head -n 1 || true)
[ -n "$insecure_key" ] || die "Vagrant's insecure public key (keys/vagrant.pub) not found: install vagrant"
mbr=/usr/lib/syslinux/mbr/mbr.bin
{ [ -f "$mbr" ] && command -v extlinux >/dev/null; } || die "extlinux and syslinux-common are needed: run tests/vm/host_deps.sh"

key=$( { cat "${BASH_SOURCE[0]}" "$insecure_key"; echo "$image"; cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true; } \
       | sha256sum | cut -c1-16)
out=$cache_root/box-$key
if [ -f "$out/ready" ]; then
  log "cached: $out/ebpf_nb-debian12.box"
  echo "$out/ebpf_nb-debian12.box"
  exit 0
fi

work=$(mktemp -d "$cache_root/boxbuild.XXXXXX")
mnt=$work/mnt
loop=
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  for m in dev/pts dev proc sys ""; do mountpoint -q "$mnt/$m" 2>/dev/null && umount -l "$mnt/$m"; done
  [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
start=$SECONDS

# One partition from 1 MiB, holding a copy of the image's ext4 file system.
fs_bytes=$(stat -c %s "$image/rootfs.img")
offset=$((1024 * 1024))
truncate -s $((offset + fs_bytes)) "$work/disk.raw"
echo "start=2048, type=83, bootable" | sfdisk -q "$work/disk.raw"
loop=$(losetup --show -f --offset "$offset" --sizelimit "$fs_bytes" "$work/disk.raw")
dd if="$image/rootfs.img" of="$loop" bs=4M conv=sparse status=none
mkdir -p "$mnt"
mount "$loop" "$mnt"
for m in proc sys dev dev/pts; do mount --bind "/$m" "$mnt/$m"; done

in_root() { chroot "$mnt" /usr/bin/env DEBIAN_FRONTEND=noninteractive "$@"; }
cp --remove-destination /etc/resolv.conf "$mnt/etc/resolv.conf"
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
  cp /usr/local/share/ca-certificates/*.crt "$mnt/usr/local/share/ca-certificates/"
  in_root update-ca-certificates >/dev/null
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$mnt/etc/pip.conf"
fi
log "installing sshd, rsync, dbus, resolved in the box"
in_root apt-get update -qq
in_root apt-get install -y -qq --no-install-recommends openssh-server rsync dbus systemd-resolved >/dev/null
in_root apt-get clean

# The account Vagrant logs in with, as on every base box.
in_root useradd --create-home --shell /bin/bash vagrant
echo vagrant:vagrant | in_root chpasswd
install -d -m 0700 -o "$(in_root id -u vagrant)" -g "$(in_root id -g vagrant)" "$mnt/home/vagrant/.ssh"
install -m 0600 -o "$(in_root id -u vagrant)" -g "$(in_root id -g vagrant)" "$insecure_key" "$mnt/home/vagrant/.ssh/authorized_keys"
printf 'vagrant ALL=(ALL) NOPASSWD: ALL\n' > "$mnt/etc/sudoers.d/vagrant"
chmod 0440 "$mnt/etc/sudoers.d/vagrant"
printf 'UseDNS no\n' > "$mnt/etc/ssh/sshd_config.d/vagrant.conf"

# The test image's boot hook and serial-only root login are not part of a box.
rm -f "$mnt/etc/systemd/system/multi-user.target.wants/ebpf-nb-vmtest.service" \
      "$mnt/etc/systemd/system/ebpf-nb-vmtest.service" "$mnt/usr/local/sbin/ebpf-nb-vmtest"
in_root passwd -l root >/dev/null
in_root systemctl enable systemd-resolved ssh >/dev/null 2>&1
ln -sf /run/systemd/resolve/stub-resolv.conf "$mnt/etc/resolv.conf"
printf 'LABEL=ebpfnb-root / ext4 defaults 0 1\n' > "$mnt/etc/fstab"
echo debian12 > "$mnt/etc/hostname"

# Boot loader: extlinux in the partition, syslinux's MBR in front of it.
kernel=$(readlink -f "$mnt/vmlinuz"); kernel=${kernel#"$mnt"}
initrd=$(readlink -f "$mnt/initrd.img"); initrd=${initrd#"$mnt"}
mkdir -p "$mnt/boot/extlinux"
printf 'DEFAULT debian\nTIMEOUT 1\nLABEL debian\n  LINUX %s\n  INITRD %s\n  APPEND root=LABEL=ebpfnb-root rw console=tty0 console=ttyS0 net.ifnames=1\n' \
  "$kernel" "$initrd" > "$mnt/boot/extlinux/extlinux.conf"
extlinux --install "$mnt/boot/extlinux" >/dev/null 2>&1
for m in dev/pts dev proc sys; do umount "$mnt/$m"; done
umount "$mnt"
losetup -d "$loop"; loop=
dd if="$mbr" of="$work/disk.raw" bs=440 count=1 conv=notrunc status=none

qemu-img convert -O qcow2 "$work/disk.raw" "$work/box.img"
rm -f "$work/disk.raw"
size_gb=$(( (offset + fs_bytes + (1 << 30) - 1) >> 30 ))
printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": %s}\n' "$size_gb" > "$work/metadata.json"
printf 'Vagrant.configure("2") do |config|\nend\n' > "$work/Vagrantfile"
tar -C "$work" -cSf "$work/ebpf_nb-debian12.box" metadata.json Vagrantfile box.img
rm -f "$work/box.img"
rm -rf "$mnt"
mv "$work" "$out"
trap - EXIT
touch "$out/ready"
find "$cache_root" -mindepth 1 -maxdepth 1 \( -name 'box-*' ! -path "$out" -o -name 'boxbuild.*' -mmin +120 \) -exec rm -rf {} +
log "built in $((SECONDS - start)) s: $out/ebpf_nb-debian12.box"
echo "$out/ebpf_nb-debian12.box"
