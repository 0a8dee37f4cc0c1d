#!/usr/bin/env bash
# shellcheck disable=SC2016  # the checks' commands are expanded by the guest's shell
# Boot the locally built Vagrant box (build_box.sh) under QEMU and check, over SSH with Vagrant's
# insecure key, what `vagrant up` relies on: key login as "vagrant", passwordless sudo, an address
# by DHCP, a resolver, rsync (the libvirt synced folder), hostnamectl (Vagrant sets the hostname).
# Seconds under TCG; QEMU is always killed on exit.
#
#   box_check.sh [CACHE_DIR]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf '\033[1m[box check]\033[0m %s\n' "$*"; }
die() { printf '[box check] error: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root"

t0=$SECONDS
box=$(bash "$here/build_box.sh" "${1:-/var/cache/ebpf_nb-vm}" | tail -n 1)
log "box ready in $((SECONDS - t0)) s: $box"
run=$(mktemp -d /tmp/ebpf_nb-box.XXXXXX)
qemu_pid=
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null && wait "$qemu_pid" 2>/dev/null
  rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

tar -C "$run" -xf "$box" box.img metadata.json
grep -q '"provider": "libvirt"' "$run/metadata.json" || die "metadata.json does not name the libvirt provider"
qemu-img create -q -f qcow2 -F qcow2 -b "$run/box.img" "$run/disk.qcow2"
key=$(find /usr/share/rubygems-integration /usr/share/vagrant /opt/vagrant -path '*keys/vagrant' 2>/dev/null | head -n 1 || true)
[ -n "$key" ] || die "Vagrant's insecure private key not found"
install -m 0600 "$key" "$run/key"
# A free loopback port for the guest's sshd.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
qemu-system-x86_64 -accel tcg,thread=multi -machine q35 -cpu max -smp 2 -m 1024 -nodefaults \
  -display none -monitor none -serial "file:$run/console.log" \
  -drive "file=$run/disk.qcow2,if=virtio,format=qcow2,cache=unsafe" \
  -nic "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:$port-:22" &
qemu_pid=$!

guest() {
  ssh -q -i "$run/key" -p "$port" -o BatchMode=yes -o IdentitiesOnly=yes -o ConnectTimeout=5 \
      -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null vagrant@127.0.0.1 "$@"
}
start=$SECONDS
until guest true 2>/dev/null; do
  kill -0 "$qemu_pid" 2>/dev/null || { tail -n 30 "$run/console.log"; die "QEMU exited before sshd answered"; }
  [ $((SECONDS - start)) -lt 300 ] || { tail -n 30 "$run/console.log"; die "no SSH login within 300 s"; }
  sleep 2
done
log "SSH login with Vagrant's insecure key after $((SECONDS - start)) s"

failures=0
check() { # what command-for-the-guest
  if guest "$2" >/dev/null 2>&1; then log "ok: $1"; else log "FAIL: $1"; failures=$((failures + 1)); fi
}
check "passwordless sudo" 'sudo -n true'
check "an IPv4 address by DHCP" 'ip -4 -o addr show scope global | grep -q inet'
check "a resolver answers" 'getent hosts localhost && resolvectl status >/dev/null'
check "rsync (libvirt synced folder)" 'rsync --version'
check "hostnamectl (Vagrant sets the hostname)" 'sudo hostnamectl set-hostname boxcheck && [ "$(hostname)" = boxcheck ]'
check "Debian 12" '. /etc/os-release && [ "$ID" = debian ] && [ "$VERSION_ID" = 12 ]'
check "a distribution kernel with kprobes" 'grep -q "^CONFIG_KPROBES=y" /boot/config-$(uname -r)'
check "root cannot log in with a password" 'sudo passwd -S root | grep -q " L "'
check "root file system by label (any disk bus)" 'grep -q "^LABEL=ebpfnb-root / " /etc/fstab'
log "$failures failed checks, $((SECONDS - t0)) s in all"
[ "$failures" = 0 ]
