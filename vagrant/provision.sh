#!/usr/bin/env bash
# The one provisioning script of ebpf_nb: used by `make setup` on a bare Debian/Ubuntu host and by
# the Vagrant VM. Idempotent: a second run changes nothing and succeeds.
#
#   provision.sh [--repo DIR] [--skip-venv]
#
# It installs BCC, clang/LLVM, libbpf, bpftool and kernel headers, mounts tracefs/debugfs/bpffs
# when missing, and creates DIR/.venv (with the system site-packages, where BCC's bindings live)
# holding the kit and its dev tools.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
skip_venv=0
while [ $# -gt 0 ]; do
  case "$1" in
    --repo) repo=$2; shift 2 ;;
    --skip-venv) skip_venv=1; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "provision.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1m[ebpf_nb setup]\033[0m %s\n' "$*"; }
die() { printf '[ebpf_nb setup] error: %s\n' "$*" >&2; exit 1; }

# --- Refuse early, before changing anything -----------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "must run as root (eBPF and apt need it): sudo make setup"
[ -r /etc/os-release ] || die "cannot read /etc/os-release: only Debian 12+ and Ubuntu 22.04+ are supported"
. /etc/os-release
case "${ID:-}:${ID_LIKE:-}" in
  debian:*|ubuntu:*|*:*debian*|*:*ubuntu*) ;;
  *) die "unsupported distribution '${PRETTY_NAME:-unknown}': only Debian 12+ and Ubuntu 22.04+ are supported" ;;
esac
[ "$(uname -s)" = Linux ] || die "eBPF needs a Linux kernel"

kernel=$(uname -r)
export DEBIAN_FRONTEND=noninteractive

# --- Packages ------------------------------------------------------------------------------------
packages=(python3-bpfcc bpfcc-tools clang llvm libbpf-dev bpftool python3-venv python3-pip make)
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done

apt_updated=0
apt_update_once() { [ "$apt_updated" = 1 ] || { say "apt-get update"; apt-get update -qq; apt_updated=1; }; }

if [ ${#missing[@]} -gt 0 ]; then
  apt_update_once
  say "installing ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Kernel headers: the exact ones when the distribution has them, else generic ones, linked ----
modules_dir=/lib/modules/$kernel
if [ -e "$modules_dir/build/include/linux/kconfig.h" ] || [ -e "$modules_dir/build/include/generated/autoconf.h" ]; then
  : # headers already usable
elif { apt_update_once; apt-cache show "linux-headers-$kernel" >/dev/null 2>&1; }; then
  say "installing linux-headers-$kernel"
  apt-get install -y -qq "linux-headers-$kernel" >/dev/null
else
  arch=$(dpkg --print-architecture)
  case "$ID" in ubuntu) meta=linux-headers-generic ;; *) meta=linux-headers-$arch ;; esac
  say "no headers packaged for kernel $kernel: installing the distribution's generic $meta"
  apt-get install -y -qq "$meta" >/dev/null
  build=$(ls -d /usr/src/linux-headers-*-"$arch" /usr/src/linux-headers-*-generic 2>/dev/null | sort -V | tail -n 1)
  [ -n "$build" ] || die "installed $meta but found no /usr/src/linux-headers-* directory"
  common=${build%-"$arch"}-common
  [ -d "$common" ] || common=$build
  mkdir -p "$modules_dir"
  ln -sfn "$build" "$modules_dir/build"
  ln -sfn "$common" "$modules_dir/source"
  cat >&2 <<WARN
[ebpf_nb setup] WARNING: the running kernel is $kernel but the distribution packages no headers
[ebpf_nb setup] for it. Linked $(basename "$build") as $modules_dir/build instead. BCC compiles
[ebpf_nb setup] against these headers: most programs work, but struct layouts that changed between
[ebpf_nb setup] the two versions read wrong values. CO-RE cells (%%bpf --core) need no headers.
WARN
fi

# --- Pseudo file systems that eBPF tools need ---------------------------------------------------
mount_if_missing() { # type path
  if ! mountpoint -q "$2"; then
    mkdir -p "$2"
    mount -t "$1" "$1" "$2" && say "mounted $1 on $2" || say "could not mount $1 on $2"
  fi
}
mount_if_missing securityfs /sys/kernel/security || true
mount_if_missing debugfs /sys/kernel/debug || true
mount_if_missing tracefs /sys/kernel/tracing
mount_if_missing bpf /sys/fs/bpf

# --- Python environment -------------------------------------------------------------------------
if [ "$skip_venv" = 0 ]; then
  # BCC's bindings are built for the distribution's interpreter: the venv must use it.
  bcc_python=/usr/bin/python3
  /usr/bin/python3 -c 'import bcc' 2>/dev/null || die "python3-bpfcc is installed but 'import bcc' fails in /usr/bin/python3"
  venv=$repo/.venv
  stamp=$venv/.ebpf_nb-installed
  if [ ! -x "$venv/bin/python" ]; then
    say "creating $venv (with system site-packages for BCC)"
    "$bcc_python" -m venv --system-site-packages "$venv"
  fi
  if [ ! -f "$stamp" ] || [ "$repo/pyproject.toml" -nt "$stamp" ]; then
    say "installing ebpf_nb and its dev tools into $venv"
    "$venv/bin/pip" install -q --upgrade pip >/dev/null
    "$venv/bin/pip" install -q -e "$repo[dev]"
    touch "$stamp"
  fi
fi
say "ready (kernel $kernel)"
