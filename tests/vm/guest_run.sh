#!/usr/bin/env bash
# Runs INSIDE the test VM (started at boot by the image's hook, see guest_boot.sh), as root.
#
#   guest_run.sh 1   first boot: provisioning refusals, provision, re-provision (must change
#                    nothing), the JupyterLab service and its privileged kernel, kprobe tests,
#                    the main suite's syscall/kprobe tests, the notebooks
#   guest_run.sh 2   after a reboot: mounts and service came back by themselves
#
# The repository is shared read-only at /mnt/repo and its files as a tar in /mnt/out; they are
# unpacked to /srv/ebpf_nb (the VM's own checkout, like /vagrant), the venv goes to /opt/ebpf_nb/venv (as the Vagrantfile does).
# JupyterLab runs as the unprivileged account "student", which has no sudo right but the kernel's.
set -euo pipefail
# Run from a private copy: the shared tree may change while this long script runs.
if [ "${EBPF_NB_GUEST_COPY:-}" != 1 ]; then
  cp "$0" /tmp/guest_run.sh && EBPF_NB_GUEST_COPY=1 exec bash /tmp/guest_run.sh "$@"
fi

phase=${1:?phase}
repo=/srv/ebpf_nb
venv=/opt/ebpf_nb/venv
user=student
port=8888
failures=0

step() { printf '\n=== %s  [%s, +%ss]\n' "$*" "$(date -u +%T)" "$SECONDS"; }
ok() { printf 'ok: %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*"; failures=$((failures + 1)); }
check() { # description command...: runs the command, records ok/FAIL
  local what=$1; shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}
# A fingerprint of everything provisioning may change, to prove a run changed nothing.
state() {
  {
    dpkg-query -W -f='${Package} ${Version} ${Status}\n'
    cat /etc/fstab
    find /etc/ebpf_nb /etc/sudoers.d /etc/systemd/system /usr/local "$venv" \
      -xdev -printf '%p %s %T@ %m\n' 2>/dev/null | sort
    systemctl show -p MainPID --value ebpf-nb-lab.service 2>/dev/null || true
  } | sha256sum
}
token() { sed -n 's/^EBPF_NB_TOKEN=//p' /etc/ebpf_nb/lab.env; }
lab() { # code: run it in a kernel started by the service's JupyterLab, print its stdout
  "$venv/bin/python" "$repo/tests/vm/guest/lab_client.py" --port "$port" --token "$(token)" --code "$1"
}
http_status() { curl -s -o /dev/null -w '%{http_code}' "$1"; }

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
  useradd --create-home --shell /bin/bash "$user"

  step "bad input: refusals before any change"
  before=$(state)
  out=$(setpriv --reuid=65534 --regid=65534 --clear-groups bash "$repo/vagrant/provision.sh" --repo "$repo" 2>&1) && rc=0 || rc=$?
  echo "$out"
  check "without root: exit 1 and says why" test "$rc" = 1
  check "without root: message" grep -q "must run as root" <<<"$out"
  printf 'ID=fakeos\nPRETTY_NAME="Fake OS 1"\n' > /tmp/fake-os-release
  # shellcheck disable=SC2016  # $0 and $1 are expanded by that inner sh
  out=$(unshare --mount sh -c 'mount --bind /tmp/fake-os-release /etc/os-release && exec bash "$0" --repo "$1" --vm --user student' \
        "$repo/vagrant/provision.sh" "$repo" 2>&1) && rc=0 || rc=$?
  echo "$out"
  check "unsupported distribution: exit 1" test "$rc" = 1
  check "unsupported distribution: message" grep -q "unsupported distribution 'Fake OS 1'" <<<"$out"
  check "refusals changed nothing" test "$before" = "$(state)"

  step "provision (first run): provision.sh --vm"
  t=$SECONDS
  # shellcheck disable=SC2016  # expanded by the inner bash
  check "first provisioning succeeds" bash -o pipefail -c \
    'bash "$1/vagrant/provision.sh" --repo "$1" --venv "$2" --vm --user "$3" --ip 0.0.0.0 --port "$4" 2>&1 | bash "$5"' \
    provision "$repo" "$venv" "$user" "$port" "$repo/tests/vm/guest/stamp_lines.sh"
  echo "first provisioning took $((SECONDS - t)) s"

  step "provision (second run): must change nothing"
  before=$(state)
  t=$SECONDS
  out=$(bash "$repo/vagrant/provision.sh" --repo "$repo" --venv "$venv" --vm --user "$user" \
        --ip 0.0.0.0 --port "$port" 2>&1) && rc=0 || rc=$?
  echo "$out"
  echo "second provisioning took $((SECONDS - t)) s"
  check "second provisioning succeeds" test "$rc" = 0
  check "second provisioning says nothing to change" grep -q "nothing to change" <<<"$out"
  check "second provisioning left packages, files, venv and service as they were" test "$before" = "$(state)"

  step "the JupyterLab service"
  check "ebpf-nb-lab is enabled" systemctl is-enabled --quiet ebpf-nb-lab.service
  url=$(runuser -u "$user" -- ebpf-nb-url --wait 300) || url=
  echo "ebpf-nb-url (as $user): $url"
  check "ebpf-nb-url prints a tokenized URL" grep -q "^http://127.0.0.1:$port/lab/tree/notebooks/00_setup.ipynb?token=$(token)\$" <<<"$url"
  main_pid=$(systemctl show -p MainPID --value ebpf-nb-lab.service)
  check "JupyterLab runs as $user, not root" test "$(ps -o user= -p "$main_pid")" = "$user"
  check "JupyterLab listens on the address the port forward reaches (0.0.0.0:$port)" \
    sh -c "ss -Hltn 'sport = :$port' | grep -q '0.0.0.0:$port'"
  check "the token is required (403 without it)" test "$(http_status "http://127.0.0.1:$port/api/status")" = 403
  check "the token works (200 with it)" test "$(http_status "http://127.0.0.1:$port/api/status?token=$(token)")" = 200
  out=$(runuser -u "$user" -- sudo -n /bin/true 2>&1) && rc=0 || rc=$?
  check "$user has no general sudo right (sudo -n true refused)" test "$rc" != 0
  out=$(sudo -n -l -U "$user" 2>&1 || true)
  echo "$out"
  check "$user's only sudo right is the kernel launcher" \
    sh -c "sudo -n -l -U $user | grep -c NOPASSWD | grep -qx 1 && sudo -n -l -U $user | grep -q 'NOPASSWD: /usr/local/libexec/ebpf-nb-kernel'"
  out=$(runuser -u "$user" -- sudo -n /usr/local/libexec/ebpf-nb-kernel -c 'import os' 2>&1) && rc=0 || rc=$?
  echo "$out"
  check "the launcher refuses a command line without a connection file" test "$rc" = 2
  runtime=/home/$user/.local/share/jupyter/runtime
  runuser -u "$user" -- mkdir -p "$runtime"
  runuser -u "$user" -- sh -c "echo '{}' > $runtime/kernel-probe.json; echo '{}' > /tmp/kernel-elsewhere.json"
  for bad in "-f /tmp/kernel-elsewhere.json" "-f $runtime/../runtime/kernel-probe.json" \
             "-f /etc/ebpf_nb/lab.env" \
             "-f $runtime/kernel-probe.json --IPKernelApp.code_to_run=print(1)" \
             "-f $runtime/kernel-probe.json --IPKernelApp.exec_lines=print(1)" \
             "-f $runtime/kernel-probe.json --IPKernelApp.exec_files=/tmp/x.py" \
             "-f $runtime/kernel-probe.json --IPKernelApp.ip=0.0.0.0" \
             "-f $runtime/kernel-probe.json --ip=0.0.0.0"; do
    # shellcheck disable=SC2086  # the options are meant to split
    out=$(runuser -u "$user" -- sudo -n /usr/local/libexec/ebpf-nb-kernel $bad 2>&1) && rc=0 || rc=$?
    check "the launcher refuses: $bad ($(head -n 1 <<<"$out"))" test "$rc" = 2
  done
  check "the kit in the root kernel's venv is a copy $user cannot write" sh -c \
    "! runuser -u $user -- test -w $venv/lib/python3*/site-packages/ebpf_nb/__init__.py && \
     $venv/bin/python -c 'import ebpf_nb, sys; sys.exit(\"site-packages\" not in ebpf_nb.__file__)'"
  out=$(lab 'import os; print("euid", os.geteuid())' 2>&1) && rc=0 || rc=$?
  echo "$out"
  check "a kernel started by JupyterLab runs as root (euid 0)" grep -qx "euid 0" <<<"$out"
  out=$(lab 'from bcc import BPF
b = BPF(text="int f(void *ctx) { return 0; }")
b.attach_kprobe(event=b.get_syscall_fnname("getpid"), fn_name="f")
print("kprobes attached", b.num_open_kprobes())' 2>&1) && rc=0 || rc=$?
  echo "$out"
  check "that kernel loads and attaches a BCC kprobe" grep -qx "kprobes attached 1" <<<"$out"
  sleep 3  # the DELETE above returns before the kernel process is gone
  check "no kernel left running after JupyterLab shut it down" sh -c '! pgrep -af "[i]pykernel_launcher"'

  step "guest tests (tests/vm/guest): kprobe on the execve syscall function"
  cd "$repo"
  check "tests/vm/guest" env EBPF_NB_VM_GUEST=1 "$venv/bin/python" -m pytest -p no:cacheprovider -v tests/vm/guest

  step "main suite: kernel tests selected by -k 'syscall or kprobe', and tests/test_probes_real.py"
  check "pytest -m kernel -k 'syscall or kprobe'" "$venv/bin/python" -m pytest -p no:cacheprovider -v \
    -m kernel -k "syscall or kprobe" --ignore=tests/vm --ignore=tests/e2e tests
  if [ -f tests/test_probes_real.py ]; then
    check "tests/test_probes_real.py" "$venv/bin/python" -m pytest -p no:cacheprovider -v tests/test_probes_real.py
  fi

  step "notebooks, executed by $user through the service's kernel (sudo)"
  mkdir -p /tmp/nb-out && chown "$user" /tmp/nb-out
  shopt -s nullglob
  notebooks=(notebooks/00_setup.ipynb notebooks/*hello*.ipynb notebooks/*map*.ipynb)
  [ ${#notebooks[@]} -gt 0 ] || fail "no notebook to run in notebooks/"
  n=0
  for nb in "${notebooks[@]}"; do
    t=$SECONDS
    n=$((n + 1))
    # The launcher takes connection files from the runtime directory only (nbclient's default
    # is a mkstemp file in /tmp): name one there, as docs/vm.md tells students to.
    check "notebook $nb runs without error" runuser -u "$user" -- env JUPYTER_PATH=/usr/local/share/ebpf_nb/jupyter \
      "$venv/bin/jupyter" nbconvert --to notebook --execute --ExecutePreprocessor.timeout=600 \
      "--KernelManager.connection_file=$runtime/kernel-nbconvert-$n.json" \
      --output-dir /tmp/nb-out "$nb"
    echo "$nb took $((SECONDS - t)) s"
  done
fi

if [ "$phase" = 2 ]; then
  step "after a reboot: mounts and service are back"
  cat /etc/fstab
  check "tracefs mounted on /sys/kernel/tracing" sh -c 'findmnt -n -t tracefs /sys/kernel/tracing >/dev/null'
  check "bpffs mounted on /sys/fs/bpf" sh -c 'findmnt -n -t bpf /sys/fs/bpf >/dev/null'
  check "fstab holds tracefs and bpffs" sh -c 'grep -q " /sys/kernel/tracing tracefs " /etc/fstab && grep -q " /sys/fs/bpf bpf " /etc/fstab'
  url=$(runuser -u "$user" -- ebpf-nb-url --wait 300) || url=
  echo "ebpf-nb-url: $url"
  check "JupyterLab came back at boot and answers" test -n "$url"
  check "ebpf-nb-lab is active" systemctl is-active --quiet ebpf-nb-lab.service
  out=$(lab 'import os; print("euid", os.geteuid()); print("tracing", os.path.exists("/sys/kernel/tracing/trace_pipe"))' 2>&1) || true
  echo "$out"
  check "its kernel is root" grep -qx "euid 0" <<<"$out"
  check "tracefs visible to that kernel" grep -qx "tracing True" <<<"$out"
  step "a third provisioning run after the reboot changes nothing"
  out=$(bash "$repo/vagrant/provision.sh" --repo "$repo" --venv "$venv" --vm --user "$user" \
        --ip 0.0.0.0 --port "$port" 2>&1) || true
  echo "$out"
  check "provisioning after reboot: nothing to change" grep -q "nothing to change" <<<"$out"
fi

step "phase $phase: $failures failed checks"
[ "$failures" = 0 ]
