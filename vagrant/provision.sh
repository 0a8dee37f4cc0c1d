#!/usr/bin/env bash
# The one provisioning script of ebpf_nb: used by `make setup` on a bare Debian/Ubuntu host, by
# the Vagrant VM, by cloud-init on classroom VMs and by the VM tests (tests/vm). Idempotent: a
# second run changes nothing and succeeds.
#
#   provision.sh [--repo DIR] [--venv DIR] [--skip-venv] [--test-tools] [--no-btf]
#                [--vm] [--service] [--user USER] [--create-user] [--workdir DIR]
#                [--ip ADDR] [--port PORT] [--url-port PORT]
#
# Always: installs BCC, clang/LLVM, libbpf, bpftool and kernel headers, mounts tracefs/debugfs/bpffs
# when missing, and creates the venv (default DIR/.venv, with the system site-packages, where BCC's
# bindings live) holding the kit, JupyterLab and the dev tools.
#   --vm        also keep tracefs/debugfs/bpffs mounted after a reboot (/etc/fstab); implies --service
#   --service   install the ebpf-nb-lab systemd service: JupyterLab started at boot as USER (never
#               root) on ADDR:PORT (default 127.0.0.1:8888) with token auth; only the notebook
#               kernel runs as root, through one sudo rule (see docs/vm.md); `ebpf-nb-url` prints
#               the URL with its token (PORT as seen from the host: --url-port, default PORT)
#   --user      the account running JupyterLab (default: $SUDO_USER, else vagrant)
#   --create-user  create USER when missing: a plain account, no password, no sudo (the VM's
#               "student"); its only root right is the kernel launcher
#   --workdir   the folder JupyterLab serves (default: the repository): created for USER, the
#               tutorials and student labs copied in when missing, never overwritten (the
#               repository itself stays read-only to USER)
#   --test-tools also what the test suite needs beyond the kit (`make test`): Debian's chromium,
#               driven by Playwright for the browser test, and qemu-img (qemu-utils) for the VM
#               grader's disk-image checks
#   --no-btf    go on although the kernel has no BTF (CO-RE cells and tutorial 06 will not work)
#
# Every check that can refuse runs before anything changes. A step that fails prints one line
# naming the step, the command, its line here and what to do; a re-run continues from there.
# EBPF_NB_LOCK_WAIT (seconds, default 300): how long to wait for another apt/dpkg to finish.
set -Eeuo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=
skip_venv=0
test_tools=0
no_btf=0
vm=0
service=0
user=${SUDO_USER:-}
create_user=0
workdir=
ip=127.0.0.1
port=8888
url_port=
while [ $# -gt 0 ]; do
  case "$1" in
    --repo) repo=${2:?--repo needs a directory}; shift 2 ;;
    --venv) venv=${2:?--venv needs a directory}; shift 2 ;;
    --skip-venv) skip_venv=1; shift ;;
    --test-tools) test_tools=1; shift ;;
    --no-btf) no_btf=1; shift ;;
    --vm) vm=1; service=1; shift ;;
    --service) service=1; shift ;;
    --user) user=${2:?--user needs an account name}; shift 2 ;;
    --create-user) create_user=1; shift ;;
    --workdir) workdir=${2:?--workdir needs a directory}; shift 2 ;;
    --ip) ip=${2:?--ip needs an address}; shift 2 ;;
    --port) port=${2:?--port needs a number}; shift 2 ;;
    --url-port) url_port=${2:?--url-port needs a number}; shift 2 ;;
    -h|--help) sed -n '2,34p' "$0"; exit 0 ;;
    *) echo "provision.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
venv=${venv:-$repo/.venv}
url_port=${url_port:-$port}

say() { printf '\033[1m[ebpf_nb setup]\033[0m %s\n' "$*"; }
die() { printf '[ebpf_nb setup] error: %s\n' "$*" >&2; exit 1; }
changes=0
changed() { changes=$((changes + 1)); say "$*"; }

# What is being done now, and what to do when it fails: set by step() before each part.
step_name="checking this machine"
step_fix="read the message above"
step() { step_name=$1; step_fix=$2; }
# shellcheck disable=SC2317  # called by the ERR trap
on_error() { # exit-code line command
  trap - ERR
  printf '[ebpf_nb setup] FAILED while %s (provision.sh line %s, exit %s: %s). What to do: %s; then run the same command again: it continues where it stopped.\n' \
    "$step_name" "$2" "$1" "$3" "$step_fix" >&2
  exit "$1"
}
trap 'on_error "$?" "$LINENO" "$BASH_COMMAND"' ERR

# --- Refuse early, before changing anything -----------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "must run as root (eBPF and apt need it): sudo make setup"
[ -r /etc/os-release ] || die "cannot read /etc/os-release: only Debian 12+ and Ubuntu 22.04+ are supported"
# shellcheck source=/dev/null
. /etc/os-release
case "${ID:-}:${ID_LIKE:-}" in
  debian:*|ubuntu:*|*:*debian*|*:*ubuntu*) ;;
  *) die "unsupported distribution '${PRETTY_NAME:-unknown}': only Debian 12+ and Ubuntu 22.04+ are supported" ;;
esac
# Too old: BCC, clang and libbpf in older releases lack what the tutorial uses (ring buffers, CO-RE).
release_major=${VERSION_ID%%.*}
case "$ID:${VERSION_ID:-}" in
  debian:*[!0-9.]*|ubuntu:*[!0-9.]*|*:) ;;  # testing/unstable carry no number: new enough
  debian:*) [ "$release_major" -ge 12 ] || die "${PRETTY_NAME:-Debian $VERSION_ID} is too old: use Debian 12 (bookworm) or newer" ;;
  ubuntu:*) [ "$release_major" -ge 22 ] || die "${PRETTY_NAME:-Ubuntu $VERSION_ID} is too old: use Ubuntu 22.04 or newer" ;;
esac
[ "$(uname -s)" = Linux ] || die "eBPF needs a Linux kernel"
[ -f "$repo/pyproject.toml" ] || die "--repo $repo does not hold the ebpf_nb repository (no pyproject.toml)"
if [ "$service" = 1 ]; then
  [ "$skip_venv" = 0 ] || die "--service needs the venv: drop --skip-venv"
  [ -d /run/systemd/system ] || die "--service needs systemd as the init system"
  [ -n "$user" ] || { id -u vagrant >/dev/null 2>&1 && user=vagrant; } || true
  [ -n "$user" ] || die "--service needs --user USER: the account that runs JupyterLab"
  case "$user" in [a-z_]*[!a-z0-9_-]*|[!a-z_]*) die "--user $user: not a plain account name (a-z, 0-9, _ and -)" ;; esac
  id -u "$user" >/dev/null 2>&1 || [ "$create_user" = 1 ] || die "--user $user: no such account (add --create-user to create it)"
  case "$workdir" in ''|/*) ;; *) die "--workdir must be an absolute path" ;; esac
  ! id -u "$user" >/dev/null 2>&1 || [ "$(id -u "$user")" -ne 0 ] || die "--user must not be root: JupyterLab runs unprivileged, only its kernel gets eBPF rights"
  case "$port$url_port" in *[!0-9]*) die "--port and --url-port take numbers" ;; esac
fi

kernel=$(uname -r)
export DEBIAN_FRONTEND=noninteractive
case "$kernel" in
  [0-4].*|5.[0-7].*) die "kernel $kernel is too old: the kit needs Linux 5.8 or newer (ring buffers, BTF); boot a newer kernel (Debian 12 ships 6.1)" ;;
esac
if [ ! -r /sys/kernel/btf/vmlinux ] && [ "$no_btf" = 0 ]; then
  die "kernel $kernel has no BTF (/sys/kernel/btf/vmlinux): CO-RE cells and tutorial 06 need a kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian's and Ubuntu's are); boot one, or pass --no-btf to set up the rest"
fi

# --- apt and dpkg: wait for another package manager, never half-install --------------------------
lock_wait=${EBPF_NB_LOCK_WAIT:-300}
case "$lock_wait" in ''|*[!0-9]*) die "EBPF_NB_LOCK_WAIT must be a number of seconds" ;; esac
# The process holding dpkg's lock (it takes POSIX locks: /proc/locks names the holder), or nothing.
dpkg_lock_holder() {
  local lock ino
  for lock in /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock; do
    [ -e "$lock" ] || continue
    ino=$(stat -c %i "$lock")
    awk -v ino="$ino" '{ split($6, id, ":"); if (id[3] == ino) { print $5; exit } }' /proc/locks
  done | head -n 1
}
wait_for_dpkg_lock() {
  local pid waited=0
  while pid=$(dpkg_lock_holder) && [ -n "$pid" ] && [ "$pid" != $$ ]; do
    if [ "$waited" -ge "$lock_wait" ]; then
      die "the package manager is busy: $(cat "/proc/$pid/comm" 2>/dev/null || echo process) (pid $pid) holds dpkg's lock; wait for it to finish (or stop it), then run this again"
    fi
    [ "$waited" = 0 ] && say "waiting up to ${lock_wait} s for $(cat "/proc/$pid/comm" 2>/dev/null || echo another process) (pid $pid) to release dpkg's lock"
    sleep 2; waited=$((waited + 2))
  done
}
# Free space where packages are unpacked and downloaded, in MiB.
free_mib() { df -Pm "$1" 2>/dev/null | awk 'NR == 2 { print $4 }'; }
need_space() { # MiB path...
  local need=$1 path free; shift
  for path in "$@"; do
    while [ ! -e "$path" ]; do path=$(dirname "$path"); done
    free=$(free_mib "$path")
    [ -z "$free" ] || [ "$free" -ge "$need" ] || \
      die "not enough disk space: $path has ${free} MiB free, setup needs about ${need} MiB; free some space (apt-get clean, old kernels, logs), then run this again"
  done
}
# apt-get with its output kept; on failure the error lines and one line saying what to do.
apt_run() {
  local log rc=0
  log=$(mktemp)
  apt-get -o DPkg::Lock::Timeout="$lock_wait" "$@" >"$log" 2>&1 || rc=$?
  # apt-get update exits 0 when lists could not be downloaded: that is a failure here.
  if [ "$rc" = 0 ] && [ "$1" = update ] && grep -qE '^(W|E): (Failed to fetch|Some index files failed)' "$log"; then
    rc=100
  fi
  if [ "$rc" != 0 ]; then
    grep -E '^(E|W|Err):' "$log" | head -n 5 >&2 || tail -n 5 "$log" >&2
    if grep -qE 'Could not resolve|Temporary failure resolving|Failed to fetch|Unable to connect|Network is unreachable|Connection timed out|Could not connect' "$log"; then
      step_fix="the package archive cannot be reached: check the network (and the proxy, if any) and /etc/apt/sources.list"
    elif grep -qE 'No space left on device|You don.t have enough free space' "$log"; then
      step_fix="the disk is full: free some space (apt-get clean)"
    elif grep -q 'Could not get lock' "$log"; then
      step_fix="another package manager holds dpkg's lock: wait for it to finish"
    elif grep -q 'dpkg was interrupted' "$log"; then
      step_fix="an earlier installation was interrupted: run 'dpkg --configure -a'"
    fi
    rm -f "$log"
    on_error "$rc" "${BASH_LINENO[0]}" "apt-get $*"
  fi
  rm -f "$log"
}

# --- Packages ------------------------------------------------------------------------------------
# binutils: objdump shows JIT-ed code; cpp: the labs read syscall numbers from <sys/syscall.h>;
# libatomic1: the buffer readers' acquire/release loads and stores (clang pulls it in today, via
# libgcc-12-dev; named so that it stays when that changes)
packages=(python3-bpfcc bpfcc-tools clang llvm libbpf-dev python3-venv python3-pip make
          binutils cpp libatomic1)
[ "$service" = 1 ] && packages+=(sudo)
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done

apt_updated=0
apt_update_once() {
  [ "$apt_updated" = 1 ] && return 0
  step "downloading the package lists (apt-get update)" \
       "check the network (and the proxy, if any) and /etc/apt/sources.list"
  wait_for_dpkg_lock
  say "apt-get update"
  apt_run update -qq
  apt_updated=1
}
has_candidate() { apt-cache policy "$1" 2>/dev/null | grep 'Candidate: [^(]' >/dev/null; }  # no -q: SIGPIPE + pipefail

# bpftool: its own package on Debian; on Ubuntu it ships with the kernel's linux-tools.
if ! bpftool version >/dev/null 2>&1; then
  apt_update_once
  if has_candidate bpftool; then missing+=(bpftool)
  elif has_candidate "linux-tools-$kernel"; then missing+=(linux-tools-common "linux-tools-$kernel")
  else missing+=(linux-tools-common linux-tools-generic)
  fi
fi

# The browser test drives Debian's chromium (Ubuntu ships it only as a snap: set EBPF_NB_CHROMIUM).
if [ "$test_tools" = 1 ] && ! dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q 'ok installed'; then
  apt_update_once
  if has_candidate chromium; then missing+=(chromium)
  else say "no chromium package here: point EBPF_NB_CHROMIUM at a Chromium for the browser test"
  fi
fi

# The VM grader's unit tests read real disk images with qemu-img (QEMU itself is not needed).
if [ "$test_tools" = 1 ] && ! command -v qemu-img >/dev/null 2>&1; then
  apt_update_once
  missing+=(qemu-utils)
fi

headers_ok() {
  [ -e "/lib/modules/$kernel/build/include/linux/kconfig.h" ] ||
    [ -e "/lib/modules/$kernel/build/include/generated/autoconf.h" ]
}
# Checked before anything is installed: room for the packages (clang, LLVM, headers, chromium)
# and for the venv (JupyterLab, pandas, matplotlib).
if [ ${#missing[@]} -gt 0 ] || ! headers_ok; then
  need_space 2048 /var/cache/apt/archives /usr
fi
if [ "$skip_venv" = 0 ] && [ ! -x "$venv/bin/python" ]; then need_space 1024 "$venv"; fi

# An installation a killed run left half done is finished first.
if [ -n "$(dpkg --audit 2>/dev/null)" ]; then
  step "finishing an interrupted package installation (dpkg --configure -a)" \
       "run 'dpkg --configure -a' and read its error"
  wait_for_dpkg_lock
  changed "finishing an interrupted package installation"
  dpkg --configure -a >/dev/null
fi

if [ ${#missing[@]} -gt 0 ]; then
  apt_update_once
  step "installing ${missing[*]}" "read apt's error above"
  wait_for_dpkg_lock
  changed "installing ${missing[*]}"
  started=$SECONDS
  apt_run install -y -qq --no-install-recommends "${missing[@]}"
  say "  (took $((SECONDS - started)) s)"
fi

# --- Kernel headers: the exact ones when the distribution has them, else generic ones, linked ----
modules_dir=/lib/modules/$kernel
if headers_ok; then
  : # headers already usable
elif { apt_update_once; has_candidate "linux-headers-$kernel"; }; then
  step "installing linux-headers-$kernel" "read apt's error above"
  wait_for_dpkg_lock
  changed "installing linux-headers-$kernel"
  started=$SECONDS
  apt_run install -y -qq "linux-headers-$kernel"
  say "  (took $((SECONDS - started)) s)"
else
  arch=$(dpkg --print-architecture)
  case "$ID" in ubuntu) meta=linux-headers-generic ;; *) meta=linux-headers-$arch ;; esac
  step "installing the generic kernel headers ($meta)" "read apt's error above"
  wait_for_dpkg_lock
  changed "no headers packaged for kernel $kernel: installing the distribution's generic $meta"
  started=$SECONDS
  apt_run install -y -qq "$meta"
  say "  (took $((SECONDS - started)) s)"
  step "linking the generic headers as $modules_dir/build" "report this as a bug of ebpf_nb's setup"
  build=$(find /usr/src -maxdepth 1 \( -name "linux-headers-*-$arch" -o -name 'linux-headers-*-generic' \) \
            -type d -print | sort -V | tail -n 1)
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
step "mounting tracefs, debugfs and bpffs" "mount them by hand (see docs/vm.md) and read the error"
mount_if_missing() { # type path
  if ! mountpoint -q "$2"; then
    mkdir -p "$2"
    if mount -t "$1" "$1" "$2"; then changed "mounted $1 on $2"; else say "could not mount $1 on $2"; fi
  fi
}
mount_if_missing securityfs /sys/kernel/security || true
mount_if_missing debugfs /sys/kernel/debug || true
mount_if_missing tracefs /sys/kernel/tracing
mount_if_missing bpf /sys/fs/bpf

if [ "$vm" = 1 ]; then
  # Mounted again at every boot (systemd mounts these itself on most systems; fstab makes it sure).
  for entry in "debugfs /sys/kernel/debug debugfs" "tracefs /sys/kernel/tracing tracefs" "bpffs /sys/fs/bpf bpf"; do
    read -r source target fstype <<<"$entry"
    if ! awk -v t="$target" '$1 !~ /^#/ && $2 == t { found = 1 } END { exit !found }' /etc/fstab; then
      printf '%s %s %s defaults 0 0\n' "$source" "$target" "$fstype" >> /etc/fstab
      changed "added $target ($fstype) to /etc/fstab"
    fi
  done
fi

# --- Python environment -------------------------------------------------------------------------
if [ "$skip_venv" = 0 ]; then
  step "creating the Python environment $venv" \
       "check that PyPI is reachable (pip's error is above); delete $venv if it is broken"
  # BCC's bindings are built for the distribution's interpreter: the venv must use it.
  bcc_python=/usr/bin/python3
  /usr/bin/python3 -c 'import bcc' 2>/dev/null || die "python3-bpfcc is installed but 'import bcc' fails in /usr/bin/python3"
  stamp=$venv/.ebpf_nb-installed
  if [ ! -x "$venv/bin/python" ]; then
    changed "creating $venv (with system site-packages for BCC)"
    "$bcc_python" -m venv --system-site-packages "$venv"
  fi
  # A service's root kernel must not run code its users can edit: there the kit is copied into
  # the root-owned venv (reinstalled when a file of the package changes); a developer's machine
  # gets an editable install.
  if [ "$service" = 1 ]; then editable=(); newer=("$repo/pyproject.toml" "$repo/ebpf_nb")
  else editable=(-e); newer=("$repo/pyproject.toml"); fi
  if [ ! -f "$stamp" ] || [ -n "$(find "${newer[@]}" -type f -newer "$stamp" ! -path '*/__pycache__/*' -print -quit)" ]; then
    changed "installing ebpf_nb and its dev tools into $venv"
    started=$SECONDS
    "$venv/bin/pip" install -q --upgrade pip >/dev/null
    "$venv/bin/pip" install -q "${editable[@]}" "${repo}[dev]"
    say "  (took $((SECONDS - started)) s)"
    touch "$stamp"
  fi
fi

# --- The JupyterLab service (VM, classroom machines) ----------------------------------------------
put_file() { # mode path < content: (re)writes the file only when its content or mode differ
  local mode=$1 path=$2 tmp
  tmp=$(mktemp)
  cat > "$tmp"
  if [ -f "$path" ] && cmp -s "$tmp" "$path" && [ "$(stat -c %a "$path")" = "${mode#0}" ]; then
    rm -f "$tmp"
    return 1
  fi
  mkdir -p "$(dirname "$path")"
  install -m "$mode" -o root -g root "$tmp" "$path"
  rm -f "$tmp"
  changed "wrote $path"
}

if [ "$service" = 1 ]; then
  step "installing the JupyterLab service" "read the error above; journalctl -u ebpf-nb-lab"
  if ! id -u "$user" >/dev/null 2>&1; then
    # A plain account: no password (nobody logs in as it), no sudo group, a private home.
    useradd --create-home --shell /bin/bash --comment "ebpf_nb JupyterLab" "$user"
    chmod 0700 "$(getent passwd "$user" | cut -d: -f6)"
    changed "created the account $user (no password, no sudo)"
  fi
  group=$(id -gn "$user")
  # The folder JupyterLab serves: the student's copies of the tutorials and labs, theirs to edit.
  # A file already there is the student's work: it is never overwritten.
  if [ -n "$workdir" ]; then
    if [ ! -d "$workdir" ]; then
      install -d -m 0755 -o "$user" -g "$group" "$workdir"
      changed "created $workdir (the folder JupyterLab serves)"
    fi
    while IFS= read -r -d '' file; do
      relative=${file#"$repo"/}
      if [ ! -e "$workdir/$relative" ]; then
        runuser -u "$user" -- install -D -m 0644 "$file" "$workdir/$relative"
        changed "copied $relative into $workdir"
      fi
    done < <(find "$repo/notebooks" "$repo/labs" -type f \( -path "$repo/notebooks/*.ipynb" \
               -o -name lab.ipynb -o -path "$repo/labs/README.md" \) -print0 | sort -z)
  fi
  serve_dir=${workdir:-$repo}
  launcher=/usr/local/libexec/ebpf-nb-kernel
  kernels=/usr/local/share/ebpf_nb/jupyter/kernels
  unit=/etc/systemd/system/ebpf-nb-lab.service
  service_changed=0

  # The kernel launcher: the one command USER may run as root. It takes exactly what JupyterLab
  # and nbclient pass: a connection file that Jupyter wrote in USER's runtime directory, and
  # nbclient's --HistoryManager.hist_file=:memory:. Nothing else (no code_to_run, exec_lines,
  # exec_files, ip, ...). It starts the root-owned venv's interpreter isolated (-I: no PYTHON*
  # variables, no user site, neither the current nor the script's directory on sys.path).
  runtime_dir=$(getent passwd "$user" | cut -d: -f6)/.local/share/jupyter/runtime
  if [ ! -d "$runtime_dir" ]; then
    runuser -u "$user" -- mkdir -p -m 0700 "$runtime_dir"
    changed "created $runtime_dir (where Jupyter writes kernel connection files)"
  fi
  put_file 0755 "$launcher" <<EOF && service_changed=1
#!/bin/sh
# ebpf_nb: start a notebook kernel as root (eBPF needs it). Run by JupyterLab through sudo:
# see /etc/sudoers.d/ebpf-nb. Written by vagrant/provision.sh.
set -eu
refuse() { echo "ebpf-nb-kernel: \$*" >&2; echo "usage: ebpf-nb-kernel -f $runtime_dir/kernel-ID.json [--HistoryManager.hist_file=:memory:]" >&2; exit 2; }
[ \$# -ge 2 ] && [ "\$1" = -f ] || refuse "the first option must be -f CONNECTION_FILE"
connection_file=\$2
shift 2
case "\$connection_file" in
  *..*|*/./*|*//*) refuse "the connection file path must be plain" ;;
  $runtime_dir/kernel-*.json) ;;
  *) refuse "the connection file must be in $runtime_dir" ;;
esac
[ -f "\$connection_file" ] && [ ! -L "\$connection_file" ] || refuse "the connection file must be an existing regular file"
[ "\$(stat -c %U "\$connection_file")" = $user ] || refuse "the connection file must belong to $user"
for option in "\$@"; do
  case "\$option" in --HistoryManager.hist_file=:memory:) ;; *) refuse "option not allowed: \$option" ;; esac
done
exec $venv/bin/python -I -m ipykernel_launcher -f "\$connection_file" "\$@"
EOF

  sudoers_tmp=$(mktemp)
  cat > "$sudoers_tmp" <<EOF
# ebpf_nb: $user (who runs JupyterLab) may start notebook kernels as root, and nothing else.
# JPY_PARENT_PID lets the kernel exit when its parent goes away. Written by vagrant/provision.sh.
Defaults!$launcher env_keep += "JPY_PARENT_PID"
$user ALL=(root) NOPASSWD: $launcher
EOF
  visudo -cqf "$sudoers_tmp" || die "the generated sudoers rule does not parse (left unchanged)"
  put_file 0440 /etc/sudoers.d/ebpf-nb < "$sudoers_tmp" || true
  rm -f "$sudoers_tmp"

  # Named python3 and displayed as ipykernel's own, so that every notebook of the kit (kernelspec
  # python3, "Python 3 (ipykernel)") gets this kernel and opening one does not mark it modified.
  # interrupt_mode "message": the unprivileged server cannot signal a root process.
  put_file 0644 "$kernels/python3/kernel.json" <<EOF && service_changed=1
{
  "argv": ["/usr/bin/sudo", "-n", "$launcher", "-f", "{connection_file}"],
  "display_name": "Python 3 (ipykernel)",
  "language": "python",
  "interrupt_mode": "message",
  "metadata": {"debugger": false}
}
EOF

  if [ ! -f /etc/ebpf_nb/lab.env ]; then
    mkdir -p /etc/ebpf_nb
    ( umask 027; printf 'EBPF_NB_TOKEN=%s\n' "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" > /etc/ebpf_nb/lab.env )
    chgrp "$group" /etc/ebpf_nb/lab.env
    changed "generated the JupyterLab token in /etc/ebpf_nb/lab.env"
    service_changed=1
  fi

  put_file 0644 "$unit" <<EOF && service_changed=1
# Written by ebpf_nb's vagrant/provision.sh
[Unit]
Description=ebpf_nb JupyterLab (token auth, runs as $user; kernels get eBPF rights via sudo)
Wants=network-online.target
After=network-online.target sys-kernel-tracing.mount sys-fs-bpf.mount
# A synced folder (Vagrant's /vagrant) may be mounted after boot: retry until it is there.
StartLimitIntervalSec=0
# Not on a grading run (a jobs disk attached, see ebpf-nb-grade.service).
ConditionPathExists=!/dev/disk/by-id/virtio-ebpfnb-job

[Service]
User=$user
Group=$group
WorkingDirectory=$serve_dir
EnvironmentFile=/etc/ebpf_nb/lab.env
Environment=JUPYTER_PATH=${kernels%/kernels}
ExecStartPre=/usr/bin/test -f $repo/pyproject.toml
ExecStartPre=/usr/bin/test -d $serve_dir/notebooks
ExecStart=$venv/bin/python -m ebpf_nb.cli lab --ip $ip --port $port --no-browser
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
EOF

  # The grading VM (ebpf_nb/labs/vm.py, docs/grading.md): a copy of this machine's disk booted
  # with a jobs disk attached (serial ebpfnb-job) grades those jobs and powers off. The unit is
  # started only by that disk's arrival; on every other boot it does nothing.
  job_device=/dev/disk/by-id/virtio-ebpfnb-job
  job_unit=$(systemd-escape --path "$job_device").device
  put_file 0644 /etc/systemd/system/ebpf-nb-grade.service <<EOF || true
# Written by ebpf_nb's vagrant/provision.sh: grading in a disposable VM (docs/grading.md)
[Unit]
Description=ebpf_nb: grade the jobs on the attached disk, then power off
After=local-fs.target sys-kernel-tracing.mount sys-fs-bpf.mount $job_unit
BindsTo=$job_unit

[Service]
Type=oneshot
ExecStart=$venv/bin/python -I -m ebpf_nb.labs.vm_job $job_device /dev/disk/by-id/virtio-ebpfnb-out
ExecStopPost=/bin/systemctl poweroff --no-block
StandardOutput=journal+console

[Install]
WantedBy=$job_unit
EOF
  if [ ! -e "/etc/systemd/system/$job_unit.wants/ebpf-nb-grade.service" ]; then
    systemctl daemon-reload
    systemctl enable --quiet ebpf-nb-grade.service
    changed "enabled ebpf-nb-grade.service (grading, when a jobs disk is attached)"
  fi

  case "$ip" in 0.0.0.0|::) probe_ip=127.0.0.1 ;; *) probe_ip=$ip ;; esac
  put_file 0755 /usr/local/bin/ebpf-nb-url <<EOF || true
#!/bin/sh
# Print the URL (with its token) of the ebpf_nb JupyterLab, as opened from the host.
# --wait SECONDS: wait until the server answers. Written by vagrant/provision.sh.
set -eu
wait=0
[ "\${1:-}" = --wait ] && wait=\${2:-60}
token=\$(sed -n 's/^EBPF_NB_TOKEN=//p' /etc/ebpf_nb/lab.env 2>/dev/null) || true
[ -n "\$token" ] || { echo "ebpf-nb-url: cannot read the token in /etc/ebpf_nb/lab.env (run it as $user or with sudo)" >&2; exit 1; }
i=0
until $venv/bin/python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)" "http://$probe_ip:$port/api/status?token=\$token" 2>/dev/null; do
  i=\$((i + 1))
  if [ "\$i" -gt "\$wait" ]; then
    echo "ebpf-nb-url: JupyterLab does not answer on port $port: systemctl status ebpf-nb-lab; journalctl -u ebpf-nb-lab" >&2
    exit 1
  fi
  sleep 1
done
echo "http://127.0.0.1:$url_port/lab/tree/notebooks/00_setup.ipynb?token=\$token"
EOF

  systemctl daemon-reload
  if ! systemctl is-enabled --quiet ebpf-nb-lab.service; then
    systemctl enable --quiet ebpf-nb-lab.service
    changed "enabled ebpf-nb-lab.service (JupyterLab at boot)"
  fi
  if ! systemctl is-active --quiet ebpf-nb-lab.service; then
    systemctl start ebpf-nb-lab.service
    changed "started ebpf-nb-lab.service"
  elif [ "$service_changed" = 1 ]; then
    systemctl restart ebpf-nb-lab.service
    changed "restarted ebpf-nb-lab.service"
  fi
fi

if [ "$changes" = 0 ]; then say "ready (kernel $kernel): nothing to change"; else say "ready (kernel $kernel): $changes changes in $SECONDS s"; fi
