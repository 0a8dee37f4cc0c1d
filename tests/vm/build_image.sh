#!/usr/bin/env bash
# shellcheck disable=SC2016  # the mmdebstrap hooks below expand "$1" (the chroot) themselves
# Build (or reuse) the base guest image the VM tests boot under QEMU: a minimal Debian of the
# host's own release, from the host's own apt sources, with a distribution kernel (kprobes on) and
# a boot hook that runs the test script shared in from the repository.
#
#   build_image.sh [CACHE_DIR]     prints the directory holding rootfs.img, vmlinuz, initrd.img
#
# The image is cached under CACHE_DIR (default /var/cache/ebpf_nb-vm) keyed by a hash of every
# input (this script, the boot hook, the apt sources, the package list), so a warm run reuses it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${1:-/var/cache/ebpf_nb-vm}
image_size=${EBPF_NB_VM_IMAGE_SIZE:-8G}

log() { printf '[vm image] %s\n' "$*" >&2; }
die() { printf '[vm image] error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (mmdebstrap and mkfs need it)"
# shellcheck source=/dev/null
. /etc/os-release
codename=${VERSION_CODENAME:?the host /etc/os-release has no VERSION_CODENAME}
arch=$(dpkg --print-architecture)
case "$arch" in
  amd64) kernel_pkg=linux-image-amd64 ;;
  arm64) kernel_pkg=linux-image-arm64 ;;
  *) die "no guest kernel package known for architecture $arch" ;;
esac
[ "$ID" = ubuntu ] && kernel_pkg=linux-image-generic

# The guest uses the host's apt sources for its own release (never a mirror written here).
host_sources() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    grep -Eq "^[[:space:]]*(Suites:|deb[[:space:]]).*([[:space:]]|^)${codename}(-updates|-security)?([[:space:]]|$)" "$f" \
      && grep -Ev '^[[:space:]]*#' "$f" && echo
  done
}
sources=$(host_sources)
[ -n "$sources" ] || die "found no apt source for '$codename' in /etc/apt: cannot pick a mirror"

# What a stock cloud image has, nothing of the kit: provision.sh installs that inside the guest.
# Like minimal cloud images, dpkg skips docs/man pages and fsyncs (the guest is emulated: TCG).
packages=(systemd-sysv udev kmod "$kernel_pkg" initramfs-tools sudo ca-certificates python3
          iproute2 procps curl e2fsprogs less)

key=$( { cat "${BASH_SOURCE[0]}" "$here/guest_boot.sh"; echo "$sources"; echo "${packages[*]}" "$image_size"; } \
       | sha256sum | cut -c1-16)
out=$cache_root/$codename-$arch-$key
if [ -f "$out/ready" ]; then
  log "cached: $out"
  echo "$out"
  exit 0
fi

mkdir -p "$cache_root"
work=$(mktemp -d "$cache_root/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
printf '%s\n' "$sources" > "$work/sources"

log "mmdebstrap $codename ($arch) from the host's apt sources"
start=$SECONDS
mmdebstrap --variant=minbase --quiet --include="$(IFS=,; echo "${packages[*]}")" \
  --customize-hook='echo ebpfnb-vm > "$1/etc/hostname"' \
  --customize-hook='printf "127.0.0.1 localhost\n127.0.1.1 ebpfnb-vm\n::1 localhost ip6-localhost ip6-loopback\n" > "$1/etc/hosts"' \
  --customize-hook='printf "/dev/vda / ext4 defaults 0 1\n" > "$1/etc/fstab"' \
  --customize-hook='printf "[Match]\nName=en* eth*\n[Network]\nDHCP=yes\n" > "$1/etc/systemd/network/20-wired.network"' \
  --customize-hook='rm -f "$1/etc/resolv.conf"; echo "nameserver 10.0.2.3" > "$1/etc/resolv.conf"' \
  --customize-hook='printf "9p\n9pnet_virtio\n" > "$1/etc/modules-load.d/ebpf-nb-vmtest.conf"' \
  --customize-hook="install -m 0755 '$here/guest_boot.sh' \"\$1/usr/local/sbin/ebpf-nb-vmtest\"" \
  --customize-hook='printf "[Unit]\nDescription=ebpf_nb VM test hook\nAfter=network-online.target\nWants=network-online.target\nConditionKernelCommandLine=ebpfnb.test\n[Service]\nType=oneshot\nExecStart=/usr/local/sbin/ebpf-nb-vmtest\nStandardOutput=journal+console\nStandardError=journal+console\n[Install]\nWantedBy=multi-user.target\n" > "$1/etc/systemd/system/ebpf-nb-vmtest.service"' \
  --customize-hook='chroot "$1" systemctl enable systemd-networkd systemd-networkd-wait-online ebpf-nb-vmtest.service' \
  --customize-hook='chroot "$1" passwd -d root' \
  --customize-hook='printf "force-unsafe-io\npath-exclude=/usr/share/man/*\npath-exclude=/usr/share/doc/*\npath-exclude=/usr/share/locale/*\npath-exclude=/usr/share/info/*\n" > "$1/etc/dpkg/dpkg.cfg.d/ebpf-nb-vmtest"' \
  --customize-hook="cp -L \"\$1/vmlinuz\" '$work/vmlinuz' && cp -L \"\$1/initrd.img\" '$work/initrd.img'" \
  "$codename" "$work/root" "$work/sources"
log "mmdebstrap took $((SECONDS - start)) s"

start=$SECONDS
mkfs.ext4 -q -F -L ebpfnb-root -d "$work/root" "$work/rootfs.img" "$image_size" >&2
log "mkfs.ext4 -d took $((SECONDS - start)) s"
rm -rf "$work/root" "$work/sources"

mv "$work" "$out"
trap - EXIT
touch "$out/ready"
# Keep one image per release and architecture: older keys and abandoned builds go.
find "$cache_root" -mindepth 1 -maxdepth 1 \( -name "$codename-$arch-*" ! -path "$out" \
  -o -name 'build.*' -mmin +120 \) -exec rm -rf {} +
echo "$out"
