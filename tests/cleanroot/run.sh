#!/usr/bin/env bash
# `make test-clean-root`: the README's quick start on a machine that has nothing of the kit.
#
# A clean Debian root (the guest image the VM tests build and cache, mounted read-only under a
# throw-away overlay) gets a copy of this working tree and only what a new machine of this kind
# already has: its apt sources and apt settings, its CA certificates, its DNS. It runs on the
# host's own kernel, so `uname -r` has no packaged headers and the generic-headers fallback runs.
# Everything happens in a private mount namespace: the host's mounts and files are untouched.
#
#   tests/cleanroot/run.sh [--full] [--keep]
#
# In order, inside the clean root:
#   1. faults that must be refused before anything changes, each with one line saying what to
#      do: a release too old, no BTF, a held dpkg lock, no network, a full disk;
#   2. the README's prerequisite (make), then `make test` from nothing, with the tests of
#      tests/cleanroot (bcc, a hello world through the magic, plain BCC and CO-RE) or, with
#      --full, the whole suite; then provision.sh again: "nothing to change";
#   3. `make lab` until it prints its URL, and the URL answers; a second `make test`.
# Prints the time of each step. EBPF_NB_VM_CACHE: the image cache (default /var/cache/ebpf_nb-vm).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
full=0
keep=0
for arg in "$@"; do
  case "$arg" in
    --full) full=1 ;;
    --keep) keep=1 ;;
    *) echo "usage: run.sh [--full] [--keep]" >&2; exit 2 ;;
  esac
done
log() { printf '\033[1m[clean root]\033[0m %s\n' "$*"; }
die() { printf '[clean root] error: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root (a loop mount, a chroot and a mount namespace)"
command -v mmdebstrap >/dev/null || {
  log "installing mmdebstrap (builds the clean root)"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq mmdebstrap >/dev/null
}

start=$SECONDS
image=$(bash "$repo/tests/vm/build_image.sh" "${EBPF_NB_VM_CACHE:-/var/cache/ebpf_nb-vm}" | tail -n 1)
log "clean Debian root image ready in $((SECONDS - start)) s: $image"

work=$(mktemp -d /var/tmp/ebpf_nb-cleanroot.XXXXXX)
cleanup() { if [ "$keep" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT
mkdir -p "$work/lower" "$work/upper" "$work/overlay-work" "$work/root"
# The tree as it is now (tracked and untracked files, not what git ignores such as .venv).
(cd "$repo" && git ls-files -co --exclude-standard -z) \
  | tar -C "$repo" --null -T - -cf "$work/tree.tar"

# Run a copy: the working tree may change while this runs (bash reads scripts as it goes).
cp "$here/inside_namespace.sh" "$work/inside_namespace.sh"
export work image full
unshare --mount --propagation private --pid --fork --kill-child bash "$work/inside_namespace.sh"
