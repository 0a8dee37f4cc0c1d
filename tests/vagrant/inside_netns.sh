#!/usr/bin/env bash
# Run by tests/vagrant/run.sh inside its network and mount namespaces: a private libvirtd, then
# `vagrant up` of the checkout's Vagrantfile and the checks, then `vagrant destroy`.
#
#   inside_netns.sh RUN_DIR BOX REPO CHECKOUT
#
# REPO: the copy of the checkout that the VM gets; CHECKOUT: the checkout itself, whose venv
# (make setup) runs the host side of the grading VM.
# shellcheck disable=SC2016  # the checks' commands are expanded by the shells that run them
set -euo pipefail
run=$1 box=$2 repo=$3 checkout=$4
log() { printf '\033[1m[test-vagrant]\033[0m %s\n' "$*"; }
failures=0
check() { # what command...
  local what=$1; shift
  if "$@"; then log "ok: $what"; else log "FAIL: $what"; failures=$((failures + 1)); fi
}

# libvirt's configuration, state and sockets, private to this run.
for d in etc lib run log cache pool; do mkdir -p "$run/libvirt/$d"; done
cp -a /etc/libvirt/. "$run/libvirt/etc/"
rm -f "$run/libvirt/etc/qemu/networks/autostart/"*
cat >> "$run/libvirt/etc/qemu.conf" <<'CONF'
# tests/vagrant: no systemd, cgroups or per-domain namespaces in this sandbox
user = "root"
group = "root"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
security_driver = "none"
remember_owner = 0
CONF
mkdir -p /etc/libvirt /var/lib/libvirt /run/libvirt /var/log/libvirt /var/cache/libvirt
mount --bind "$run/libvirt/etc" /etc/libvirt
mount --bind "$run/libvirt/lib" /var/lib/libvirt
mount --bind "$run/libvirt/run" /run/libvirt
mount --bind "$run/libvirt/log" /var/log/libvirt
mount --bind "$run/libvirt/cache" /var/cache/libvirt
virtlogd -d
libvirtd -d
for _ in $(seq 30); do virsh -q version >/dev/null 2>&1 && break; sleep 1; done
virsh -q pool-define-as default dir --target "$run/libvirt/pool" >/dev/null
virsh -q pool-start default >/dev/null

export VAGRANT_HOME=$run/vagrant.d VAGRANT_DEFAULT_PROVIDER=libvirt VAGRANT_CHECKPOINT_DISABLE=1
export EBPF_NB_LIBVIRT_DRIVER=qemu
vagrant box add -f --name debian/bookworm64 "$box"
cd "$repo/vagrant"
hide_token() { sed -u 's/token=[0-9a-f]*/token=(hidden)/g'; }
in_guest() { vagrant ssh -c "$1" 2>/dev/null | tr -d '\r'; }
up() { # label: vagrant up, its log kept in the run directory
  local t=$SECONDS
  if vagrant up --provider=libvirt >"$run/$1.log" 2>&1; then
    log "vagrant up ($1) took $((SECONDS - t)) s"; tail -n 3 "$run/$1.log" | hide_token
  else
    hide_token < "$run/$1.log"; log "FAIL: vagrant up ($1) after $((SECONDS - t)) s"; failures=$((failures + 1)); return 1
  fi
}
serving() { # label: the URL the guest prints answers here, through the forward, with its token only
  local url
  url=$(in_guest 'sudo ebpf-nb-url --wait 300' | tail -n 1)
  log "$1: URL ${url%%token=*}token=(hidden)"
  check "$1: the URL points at this host's 127.0.0.1:8888" grep -q '^http://127.0.0.1:8888/lab/tree/notebooks/00_setup.ipynb?token=' <<<"$url"
  # The token reaches python through the environment, never a command line.
  check "$1: the URL answers with its token (200), not without it (403)" env URL="$url" python3 -c '
import os, urllib.error, urllib.request
url = os.environ["URL"]
base, token = url.split("/lab/")[0], url.split("token=")[1]
assert urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=20).status == 200
try:
    urllib.request.urlopen(f"{base}/api/status", timeout=20)
    raise SystemExit("answered without the token")
except urllib.error.HTTPError as error:
    assert error.code == 403, error.code'
  check "$1: the forward listens on 127.0.0.1 only" sh -c \
    "ss -Hltn 'sport = :8888' | awk '{print \$4}' | grep -qx '127.0.0.1:8888' && ! ss -Hltn 'sport = :8888' | awk '{print \$4}' | grep -vqx '127.0.0.1:8888'"
}

guest_checks() { # what: tests/vm/guest_checks.sh WHAT in the guest, as root; its output here
  local t=$SECONDS rc
  if vagrant ssh -c "sudo bash /vagrant/tests/vm/guest_checks.sh $1" 2>&1 | tr -d '\r' | hide_token; then rc=0; else rc=$?; fi
  if [ "$rc" = 0 ]; then log "ok: in the guest: $1 ($((SECONDS - t)) s)"
  else log "FAIL: in the guest: $1 (exit $rc, after $((SECONDS - t)) s)"; failures=$((failures + 1)); fi
}

up first || true
serving "after the first up"

# Provisioning again through Vagrant changes nothing: no package, account, file or service.
before=$(in_guest 'sudo bash /vagrant/tests/vm/guest_checks.sh state')
t=$SECONDS
out=$(vagrant provision --provision-with ebpf_nb 2>&1 | tr -d '\r') || true
log "vagrant provision took $((SECONDS - t)) s"; tail -n 3 <<<"$out"
check "vagrant provision again: nothing to change" grep -q "nothing to change" <<<"$out"
check "vagrant provision again: packages, accounts, files and service as they were" \
  test "$before" = "$(in_guest 'sudo bash /vagrant/tests/vm/guest_checks.sh state')"

for what in refusals service kprobes notebooks; do guest_checks "$what"; done
# A debugging aid: EBPF_NB_VAGRANT_HOLD=1 stops here, the VM up, until $run/continue exists
# (enter this run's namespaces with nsenter -t PID -m -n, PID as logged; VAGRANT_HOME as below).
if [ -n "${EBPF_NB_VAGRANT_HOLD:-}" ]; then
  log "holding: pid $$, VAGRANT_HOME=$VAGRANT_HOME, cd $repo/vagrant; touch $run/continue to go on"
  while [ ! -e "$run/continue" ]; do sleep 5; done
fi

# Root in the guest changes its own copy; the host's checkout is untouched.
before=$(sha256sum Vagrantfile provision.sh)
in_guest 'sudo sh -c "echo \"# written in the guest\" >> /vagrant/vagrant/Vagrantfile; rm -f /vagrant/vagrant/provision.sh"' >/dev/null || true
check "root in the guest changed its copy (the Vagrantfile written, provision.sh removed)" sh -c \
  "[ \"\$(vagrant ssh -c 'tail -n 1 /vagrant/vagrant/Vagrantfile; test -e /vagrant/vagrant/provision.sh || echo gone' 2>/dev/null | tr -d '\r')\" = '# written in the guest
gone' ]"
check "... and the host's Vagrantfile and provision.sh are unchanged" test "$before" = "$(sha256sum Vagrantfile provision.sh)"

t=$SECONDS
if vagrant halt >"$run/halt.log" 2>&1; then
  log "vagrant halt took $((SECONDS - t)) s"
else
  cat "$run/halt.log"; log "FAIL: vagrant halt"; failures=$((failures + 1))
fi
# The disposable grading VM, booted by the host's own kit from the halted guest's disk (no
# network, every write to a throw-away overlay): the adversarial class of the host tests.
disk=$(virsh -q domblklist "$(virsh -q list --all --name | head -n 1)" | awk '$1 == "vda" {print $2}')
log "grading VM image: $disk"
t=$SECONDS
check "the adversarial class graded in the disposable VM (tests/vm/grader)" \
  env -C "$checkout" EBPF_NB_GRADER_IMAGE="$disk" EBPF_NB_GRADER_ACCEL=tcg \
  "$checkout/.venv/bin/python" -m pytest -p no:cacheprovider -v tests/vm/grader
log "grading in the VM took $((SECONDS - t)) s"

if up second; then
  serving "after vagrant halt and up"
  guest_checks rebooted
fi

t=$SECONDS
vagrant destroy -f >"$run/destroy.log" 2>&1 || { cat "$run/destroy.log"; failures=$((failures + 1)); }
log "vagrant destroy took $((SECONDS - t)) s"
virsh -q list --all; virsh -q vol-list default; virsh -q net-list --all
check "vagrant destroy: no domain left" sh -c '[ -z "$(virsh -q list --all --name | tr -d "[:space:]")" ]'
check "vagrant destroy: no volume left but the box's base image" \
  sh -c '[ -z "$(virsh -q vol-list default | grep -v "_vagrant_box_image_" | tr -d "[:space:]")" ]'
check "vagrant destroy: no network left" sh -c '[ -z "$(virsh -q net-list --all --name | tr -d "[:space:]")" ]'
log "$failures failed checks"
[ "$failures" = 0 ]
