#!/usr/bin/env bash
# The host tools `make test-vm` needs (Debian/Ubuntu, as root), installed when missing: QEMU,
# mmdebstrap (guest image), shellcheck, Vagrant and its libvirt provider (`vagrant validate`),
# extlinux and sfdisk (the bootable disk of the locally built Vagrant box).
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "host_deps.sh: must run as root" >&2; exit 1; }
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v qemu-img >/dev/null || need+=(qemu-utils)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v shellcheck >/dev/null || need+=(shellcheck)
command -v vagrant >/dev/null || need+=(vagrant)
command -v extlinux >/dev/null || need+=(extlinux)
[ -f /usr/lib/syslinux/mbr/mbr.bin ] || need+=(syslinux-common)
command -v sfdisk >/dev/null || need+=(fdisk)
command -v ssh >/dev/null || need+=(openssh-client)
# test-vagrant: a private libvirtd (the daemon and its QEMU driver, dnsmasq, iptables for NAT)
command -v libvirtd >/dev/null || need+=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients)
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
command -v iptables >/dev/null || need+=(iptables)
dpkg-query -W -f='${Status}' vagrant-libvirt 2>/dev/null | grep -q 'ok installed' || need+=(vagrant-libvirt)
if [ ${#need[@]} -gt 0 ]; then
  echo "[test-vm] installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
