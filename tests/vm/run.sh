#!/usr/bin/env bash
# The bare-image VM test (`make test-vm-bare`, a slow extra): boot a real Debian guest under QEMU's TCG (this host's
# /dev/kvm cannot boot a stock kernel), run vagrant/provision.sh inside it, then the kernel tests
# this host cannot run (kprobes), reboot, and check what must survive a reboot.
#
#   tests/vm/run.sh [--keep]        --keep: leave the run directory (disk, logs) for inspection
#
# Phase 1 (first boot): provision twice (the second run must change nothing), then the guest
# tests. Phase 2 (second boot of the same disk): mounts and the JupyterLab service came back.
# The guest writes its logs and exit codes to a shared directory; QEMU is always killed on exit.
# Environment: EBPF_NB_VM_CACHE (image cache, default /var/cache/ebpf_nb-vm),
# EBPF_NB_VM_MEMORY (MiB, 4096), EBPF_NB_VM_CPUS (2), EBPF_NB_VM_TIMEOUT (s per boot, 3600).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
keep=0
[ "${1:-}" = --keep ] && keep=1
cache=${EBPF_NB_VM_CACHE:-/var/cache/ebpf_nb-vm}
memory=${EBPF_NB_VM_MEMORY:-4096}
cpus=${EBPF_NB_VM_CPUS:-2}
phase_timeout=${EBPF_NB_VM_TIMEOUT:-3600}

log() { printf '\033[1m[test-vm]\033[0m %s\n' "$*"; }
die() { printf '[test-vm] error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (image build and QEMU's 9p sharing)"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing: run tests/vm/host_deps.sh"

t0=$SECONDS
image=$(bash "$here/build_image.sh" "$cache" | tail -n 1)  # its last line is the path
t_image=$((SECONDS - t0))
log "base image ready in ${t_image} s: $image"

run=$(mktemp -d /tmp/ebpf_nb-vm.XXXXXX)
mkdir -p "$run/out/host-ca"
# The host's own extra trust anchors (e.g. a TLS-inspecting egress proxy's CA), so the guest
# reaches the package registries the way the host does; the guest installs them before testing.
cp /usr/local/share/ca-certificates/*.crt "$run/out/host-ca/" 2>/dev/null || true
# The tree the guest tests: what git tracks or would track (not .venv, node_modules, caches).
(cd "$repo" && git ls-files -co --exclude-standard -z) | tar -C "$repo" --null -T - -cf "$run/out/tree.tar"
qemu_pid=
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
    kill "$qemu_pid" 2>/dev/null || true
    sleep 2
    kill -9 "$qemu_pid" 2>/dev/null || true
  fi
  if [ "$keep" = 1 ]; then log "run directory kept: $run"; else rm -rf "$run"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A copy-on-write layer over the cached image: the cache stays pristine.
qemu-img create -q -f qcow2 -F raw -b "$image/rootfs.img" "$run/disk.qcow2"

boot() { # phase
  local phase=$1 start=$SECONDS
  log "boot $phase (TCG, $cpus CPUs, $memory MiB, timeout ${phase_timeout} s)"
  qemu-system-x86_64 -accel tcg,thread=multi -machine q35 -cpu max -smp "$cpus" -m "$memory" \
    -nodefaults -no-reboot -display none -monitor none -serial "file:$run/console$phase.log" \
    -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 ebpfnb.test=$phase" \
    -drive "file=$run/disk.qcow2,if=virtio,format=qcow2,cache=unsafe" \
    -nic user,model=virtio-net-pci \
    -virtfs "local,path=$repo,mount_tag=repo,security_model=none,readonly=on" \
    -virtfs "local,path=$run/out,mount_tag=out,security_model=none" &
  qemu_pid=$!
  local waited=0
  while kill -0 "$qemu_pid" 2>/dev/null; do
    if [ "$waited" -ge "$phase_timeout" ]; then
      log "boot $phase: timeout after ${phase_timeout} s, killing QEMU; console tail:"
      tail -n 40 "$run/console$phase.log" || true
      kill "$qemu_pid"; wait "$qemu_pid" || true; qemu_pid=
      return 1
    fi
    sleep 1; waited=$((waited + 1))
  done
  wait "$qemu_pid" || true
  qemu_pid=
  eval "t_boot$phase=$((SECONDS - start))"
  log "boot $phase: QEMU exited after $((SECONDS - start)) s"
  if [ ! -f "$run/out/phase$phase.rc" ]; then
    log "boot $phase: the guest wrote no result; console tail:"
    tail -n 60 "$run/console$phase.log" || true
    return 1
  fi
  log "---- guest log, phase $phase ----"
  cat "$run/out/phase$phase.log"
  log "---- end of guest log, phase $phase (exit $(cat "$run/out/phase$phase.rc")) ----"
  [ "$(cat "$run/out/phase$phase.rc")" = 0 ]
}

status=0
boot 1 || status=1
# The reboot checks run whenever the first boot got as far as reporting (even with failures).
if [ -f "$run/out/phase1.rc" ]; then boot 2 || status=1; fi
log "timings: image ${t_image} s, boot 1 ${t_boot1:-?} s, boot 2 ${t_boot2:-?} s, total $((SECONDS - t0)) s"
if [ "$status" = 0 ]; then log "PASSED"; else log "FAILED"; fi
exit "$status"
