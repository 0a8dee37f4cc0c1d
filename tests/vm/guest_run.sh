#!/usr/bin/env bash
# Runs INSIDE the bare-image test VM (`make test-vm-bare`, started at boot by the image's hook, see
# guest_boot.sh), as root: provision.sh on a Debian that has nothing of Vagrant.
#
#   guest_run.sh 1   first boot: provisioning refusals, provision, re-provision (must change
#                    nothing), then guest_checks.sh: service, kprobes, notebooks
#   guest_run.sh 2   after a reboot: mounts and service came back by themselves
#
# The repository is shared read-only at /mnt/repo and its files as a tar in /mnt/out; they are
# unpacked to /srv/ebpf_nb (the VM's own checkout, like /vagrant), the venv goes to
# /opt/ebpf_nb/venv and JupyterLab runs as "student", created by provision.sh, as the Vagrantfile does.
set -euo pipefail
# Run from a private copy: the shared tree may change while this long script runs.
if [ "${EBPF_NB_GUEST_COPY:-}" != 1 ]; then
  copy=$(mktemp -d /root/guest_run.XXXXXX)
  cp "$0" "$(dirname "$0")/checks_lib.sh" "$copy/"
  EBPF_NB_GUEST_COPY=1 exec bash "$copy/guest_run.sh" "$@"
fi

phase=${1:?phase}
repo=/srv/ebpf_nb
venv=/opt/ebpf_nb/venv
user=student
workdir=/home/student/ebpf_nb
port=8888
failures=0
provision=(bash "$repo/vagrant/provision.sh" --repo "$repo" --venv "$venv" --vm --user "$user"
           --create-user --workdir "$workdir" --ip 127.0.0.1 --port "$port")

# shellcheck source-path=SCRIPTDIR source=checks_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/checks_lib.sh"
guest_checks() { bash "$repo/tests/vm/guest_checks.sh" "$1" --repo "$repo" --venv "$venv" --user "$user" \
                   --workdir "$workdir" --ip 127.0.0.1 --port "$port"; }

step "guest: $(uname -srm), $(nproc) CPUs, $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) MiB"

if [ "$phase" = 1 ]; then
  step "test harness: the host's extra CA certificates (registries behind a TLS proxy)"
  if ls /mnt/out/host-ca/*.crt >/dev/null 2>&1; then
    cp /mnt/out/host-ca/*.crt /usr/local/share/ca-certificates/
    update-ca-certificates >/dev/null
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > /etc/pip.conf  # pip: certifi otherwise
    ls /mnt/out/host-ca
  fi

  step "copy the repository into the guest"
  mkdir -p "$repo"
  tar -C "$repo" -xf /mnt/out/tree.tar  # the host's tree as git sees it (tests/vm/run.sh)

  check "provisioning refusals" guest_checks refusals

  step "provision (first run): provision.sh --vm --create-user"
  t=$SECONDS
  # shellcheck disable=SC2016  # expanded by the inner bash
  check "first provisioning succeeds" bash -o pipefail -c '"${@:2}" 2>&1 | bash "$1"' \
    provision "$repo/tests/vm/guest/stamp_lines.sh" "${provision[@]}"
  echo "first provisioning took $((SECONDS - t)) s"

  step "provision (second run): must change nothing"
  before=$(guest_checks state)
  t=$SECONDS
  out=$("${provision[@]}" 2>&1) && rc=0 || rc=$?
  echo "$out"
  echo "second provisioning took $((SECONDS - t)) s"
  check "second provisioning succeeds" test "$rc" = 0
  check "second provisioning says nothing to change" grep -q "nothing to change" <<<"$out"
  check "second provisioning left packages, accounts, files, venv and service as they were" \
    test "$before" = "$(guest_checks state)"

  check "the service, its account and launcher" guest_checks service
  check "kprobe tests" guest_checks kprobes
  check "every notebook" guest_checks notebooks
fi

if [ "$phase" = 2 ]; then
  check "after a reboot" guest_checks rebooted
  step "a third provisioning run after the reboot changes nothing"
  out=$("${provision[@]}" 2>&1) || true
  echo "$out"
  check "provisioning after reboot: nothing to change" grep -q "nothing to change" <<<"$out"
fi

step "phase $phase: $failures failed checks"
[ "$failures" = 0 ]
