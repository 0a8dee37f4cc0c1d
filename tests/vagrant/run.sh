#!/usr/bin/env bash
# `make test-vagrant`: the real `vagrant up --provider=libvirt` of vagrant/Vagrantfile, with a box
# built locally from the VM tests' cached Debian 12 image (build_box.sh) registered under the
# Vagrantfile's default box name. libvirtd, its networks and Vagrant run in a network namespace
# of their own (the host's networking is untouched but for one NAT rule for that namespace's
# /30, removed on exit) and a private mount namespace (libvirt's state lives in a temporary run
# directory). QEMU runs under TCG where /dev/kvm cannot boot a guest.
#
#   tests/vagrant/run.sh [--keep]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
keep=0
[ "${1:-}" = --keep ] && keep=1
log() { printf '\033[1m[test-vagrant]\033[0m %s\n' "$*"; }
die() { printf '[test-vagrant] error: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root"
for tool in libvirtd virtlogd virsh iptables vagrant; do
  command -v "$tool" >/dev/null || die "$tool missing: run tests/vm/host_deps.sh"
done

[ -x "$repo/.venv/bin/python" ] || die "no $repo/.venv: run make setup first (the grading VM test uses it)"
# libvirt's QEMU driver resolves its default account at start (libvirt-daemon-system creates it).
getent passwd libvirt-qemu >/dev/null || useradd --system --no-create-home --shell /usr/sbin/nologin libvirt-qemu
box=$(bash "$here/build_box.sh" "${EBPF_NB_VM_CACHE:-/var/cache/ebpf_nb-vm}" | tail -n 1)
run=$(mktemp -d /var/tmp/ebpf_nb-vagrant.XXXXXX)
ns=ebpfnb-vg$$
host_if=vgh$$
ns_if=vgn$$
subnet=10.203.$(($$ % 250)).0/30
prefix=${subnet%.0/30}
uplink=$(ip -o route show default | awk '{print $5; exit}')
forward_before=$(cat /proc/sys/net/ipv4/ip_forward)
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  iptables -t nat -D POSTROUTING -s "$subnet" -o "$uplink" -j MASQUERADE 2>/dev/null || true
  iptables -D FORWARD -i "$host_if" -j ACCEPT 2>/dev/null || true
  iptables -D FORWARD -o "$host_if" -j ACCEPT 2>/dev/null || true
  echo "$forward_before" > /proc/sys/net/ipv4/ip_forward
  ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip link del "$host_if" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  if [ "$keep" = 1 ]; then log "run directory kept: $run"; else rm -rf "$run"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$ns"
ip link add "$host_if" type veth peer name "$ns_if"
ip link set "$ns_if" netns "$ns"
ip addr add "$prefix.1/30" dev "$host_if"
ip link set "$host_if" up
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" ip addr add "$prefix.2/30" dev "$ns_if"
ip netns exec "$ns" ip link set "$ns_if" up
ip netns exec "$ns" ip route add default via "$prefix.1"
echo 1 > /proc/sys/net/ipv4/ip_forward
iptables -t nat -A POSTROUTING -s "$subnet" -o "$uplink" -j MASQUERADE
iptables -A FORWARD -i "$host_if" -j ACCEPT
iptables -A FORWARD -o "$host_if" -j ACCEPT

# The student's checkout: what git tracks or would track.
mkdir -p "$run/repo"
(cd "$repo" && git ls-files -co --exclude-standard -z) | tar -C "$repo" --null -T - -cf - | tar -C "$run/repo" -xf -
# Run from that copy: the checkout may change while this runs (bash reads a script as it goes).
ip netns exec "$ns" unshare --mount --propagation private \
  bash "$run/repo/tests/vagrant/inside_netns.sh" "$run" "$box" "$run/repo" "$repo"
