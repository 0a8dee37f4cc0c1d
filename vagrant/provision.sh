#!/usr/bin/env bash
# The one provisioning script of ebpf_nb: used by `make setup` on a bare Debian/Ubuntu host, by
# the Vagrant VM, by cloud-init on classroom VMs and by the VM tests (tests/vm). Idempotent: a
# second run changes nothing and succeeds.
#
#   provision.sh [--repo DIR] [--venv DIR] [--skip-venv] [--test-tools]
#                [--vm] [--service] [--user USER] [--ip ADDR] [--port PORT] [--url-port PORT]
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
#   --test-tools also what the test suite needs beyond the kit (`make test`): Debian's chromium,
#               driven by Playwright for the browser test
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=
skip_venv=0
test_tools=0
vm=0
service=0
user=${SUDO_USER:-}
ip=127.0.0.1
port=8888
url_port=
while [ $# -gt 0 ]; do
  case "$1" in
    --repo) repo=${2:?--repo needs a directory}; shift 2 ;;
    --venv) venv=${2:?--venv needs a directory}; shift 2 ;;
    --skip-venv) skip_venv=1; shift ;;
    --test-tools) test_tools=1; shift ;;
    --vm) vm=1; service=1; shift ;;
    --service) service=1; shift ;;
    --user) user=${2:?--user needs an account name}; shift 2 ;;
    --ip) ip=${2:?--ip needs an address}; shift 2 ;;
    --port) port=${2:?--port needs a number}; shift 2 ;;
    --url-port) url_port=${2:?--url-port needs a number}; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "provision.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
venv=${venv:-$repo/.venv}
url_port=${url_port:-$port}

say() { printf '\033[1m[ebpf_nb setup]\033[0m %s\n' "$*"; }
die() { printf '[ebpf_nb setup] error: %s\n' "$*" >&2; exit 1; }
changes=0
changed() { changes=$((changes + 1)); say "$*"; }

# --- Refuse early, before changing anything -----------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "must run as root (eBPF and apt need it): sudo make setup"
[ -r /etc/os-release ] || die "cannot read /etc/os-release: only Debian 12+ and Ubuntu 22.04+ are supported"
# shellcheck source=/dev/null
. /etc/os-release
case "${ID:-}:${ID_LIKE:-}" in
  debian:*|ubuntu:*|*:*debian*|*:*ubuntu*) ;;
  *) die "unsupported distribution '${PRETTY_NAME:-unknown}': only Debian 12+ and Ubuntu 22.04+ are supported" ;;
esac
[ "$(uname -s)" = Linux ] || die "eBPF needs a Linux kernel"
[ -f "$repo/pyproject.toml" ] || die "--repo $repo does not hold the ebpf_nb repository (no pyproject.toml)"
if [ "$service" = 1 ]; then
  [ "$skip_venv" = 0 ] || die "--service needs the venv: drop --skip-venv"
  [ -d /run/systemd/system ] || die "--service needs systemd as the init system"
  [ -n "$user" ] || { id -u vagrant >/dev/null 2>&1 && user=vagrant; } || true
  [ -n "$user" ] || die "--service needs --user USER: the account that runs JupyterLab"
  id -u "$user" >/dev/null 2>&1 || die "--user $user: no such account"
  [ "$(id -u "$user")" -ne 0 ] || die "--user must not be root: JupyterLab runs unprivileged, only its kernel gets eBPF rights"
  case "$port$url_port" in *[!0-9]*) die "--port and --url-port take numbers" ;; esac
fi

kernel=$(uname -r)
export DEBIAN_FRONTEND=noninteractive

# --- Packages ------------------------------------------------------------------------------------
# binutils: objdump shows JIT-ed code; cpp: the labs read syscall numbers from <sys/syscall.h>
packages=(python3-bpfcc bpfcc-tools clang llvm libbpf-dev python3-venv python3-pip make
          binutils cpp)
[ "$service" = 1 ] && packages+=(sudo)
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done

apt_updated=0
apt_update_once() { [ "$apt_updated" = 1 ] || { say "apt-get update"; apt-get update -qq; apt_updated=1; }; }
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

if [ ${#missing[@]} -gt 0 ]; then
  apt_update_once
  changed "installing ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Kernel headers: the exact ones when the distribution has them, else generic ones, linked ----
modules_dir=/lib/modules/$kernel
if [ -e "$modules_dir/build/include/linux/kconfig.h" ] || [ -e "$modules_dir/build/include/generated/autoconf.h" ]; then
  : # headers already usable
elif { apt_update_once; apt-cache show "linux-headers-$kernel" >/dev/null 2>&1; }; then
  changed "installing linux-headers-$kernel"
  apt-get install -y -qq "linux-headers-$kernel" >/dev/null
else
  arch=$(dpkg --print-architecture)
  case "$ID" in ubuntu) meta=linux-headers-generic ;; *) meta=linux-headers-$arch ;; esac
  changed "no headers packaged for kernel $kernel: installing the distribution's generic $meta"
  apt-get install -y -qq "$meta" >/dev/null
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
  # BCC's bindings are built for the distribution's interpreter: the venv must use it.
  bcc_python=/usr/bin/python3
  /usr/bin/python3 -c 'import bcc' 2>/dev/null || die "python3-bpfcc is installed but 'import bcc' fails in /usr/bin/python3"
  stamp=$venv/.ebpf_nb-installed
  if [ ! -x "$venv/bin/python" ]; then
    changed "creating $venv (with system site-packages for BCC)"
    "$bcc_python" -m venv --system-site-packages "$venv"
  fi
  if [ ! -f "$stamp" ] || [ "$repo/pyproject.toml" -nt "$stamp" ]; then
    changed "installing ebpf_nb and its dev tools into $venv"
    "$venv/bin/pip" install -q --upgrade pip >/dev/null
    "$venv/bin/pip" install -q -e "${repo}[dev]"
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
  group=$(id -gn "$user")
  launcher=/usr/local/libexec/ebpf-nb-kernel
  kernels=/usr/local/share/ebpf_nb/jupyter/kernels
  unit=/etc/systemd/system/ebpf-nb-lab.service
  service_changed=0

  # The kernel launcher: the one command USER may run as root. It takes the connection file
  # Jupyter passes, then only kernel options of the form --Class.trait=value (nbclient adds
  # --HistoryManager.hist_file=:memory:), and starts the venv's (root-owned) interpreter.
  put_file 0755 "$launcher" <<EOF && service_changed=1
#!/bin/sh
# ebpf_nb: start a notebook kernel as root (eBPF needs it). Run by JupyterLab through sudo:
# see /etc/sudoers.d/ebpf-nb. Written by vagrant/provision.sh.
set -eu
usage() { echo "usage: ebpf-nb-kernel -f CONNECTION_FILE [--Class.trait=value ...]" >&2; exit 2; }
[ \$# -ge 2 ] && [ "\$1" = -f ] || usage
case "\$2" in /*.json) ;; *) echo "ebpf-nb-kernel: the connection file must be an absolute .json path" >&2; exit 2 ;; esac
connection_file=\$2
shift 2
for option in "\$@"; do
  case "\$option" in --[A-Za-z]*.[A-Za-z_]*=*) ;; *) usage ;; esac
done
exec $venv/bin/python -m ipykernel_launcher -f "\$connection_file" "\$@"
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

  # Named python3 so that every notebook of the kit (kernelspec python3) gets this kernel.
  # interrupt_mode "message": the unprivileged server cannot signal a root process.
  put_file 0644 "$kernels/python3/kernel.json" <<EOF && service_changed=1
{
  "argv": ["/usr/bin/sudo", "-n", "$launcher", "-f", "{connection_file}"],
  "display_name": "Python 3 (ebpf_nb, eBPF kernel)",
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

[Service]
User=$user
Group=$group
WorkingDirectory=$repo
EnvironmentFile=/etc/ebpf_nb/lab.env
Environment=JUPYTER_PATH=${kernels%/kernels}
ExecStartPre=/usr/bin/test -f $repo/pyproject.toml
ExecStart=$venv/bin/python -m ebpf_nb.cli lab --ip $ip --port $port --no-browser
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
EOF

  put_file 0755 /usr/local/bin/ebpf-nb-url <<EOF || true
#!/bin/sh
# Print the URL (with its token) of the ebpf_nb JupyterLab, as opened from the host.
# --wait SECONDS: wait until the server answers. Written by vagrant/provision.sh.
set -eu
wait=0
[ "\${1:-}" = --wait ] && wait=\${2:-60}
token=\$(sed -n 's/^EBPF_NB_TOKEN=//p' /etc/ebpf_nb/lab.env 2>/dev/null) || true
[ -n "\$token" ] || { echo "ebpf-nb-url: cannot read the token in /etc/ebpf_nb/lab.env (run as $user or root)" >&2; exit 1; }
i=0
until $venv/bin/python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)" "http://127.0.0.1:$port/api/status?token=\$token" 2>/dev/null; do
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

if [ "$changes" = 0 ]; then say "ready (kernel $kernel): nothing to change"; else say "ready (kernel $kernel): $changes changes"; fi
