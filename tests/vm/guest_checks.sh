#!/usr/bin/env bash
# The checks of a provisioned ebpf_nb guest, run INSIDE it as root: by the real `vagrant up` test
# (tests/vagrant/inside_netns.sh, through `vagrant ssh`) and by the bare-image test
# (tests/vm/guest_run.sh). One script, so both guests are held to the same list.
#
#   guest_checks.sh WHAT [--repo DIR] [--venv DIR] [--user USER] [--workdir DIR] [--ip ADDR] [--port N]
#
#   refusals     provision.sh refuses bad input (no root, unknown distribution), changing nothing
#   state        print a fingerprint of everything provisioning may change (to prove a re-run
#                changed nothing)
#   service      the JupyterLab service, its account, its kernel launcher and what USER can write
#   kprobes      the guest tests (tests/vm/guest) and the main suite's syscall/kprobe tests
#   notebooks    every tutorial, lab solution and student lab, run by USER through the service's
#                kernel (the launcher): solutions pass every check, student labs say "not done"
#   rebooted     after a reboot: mounts and the service came back by themselves
# Exits non-zero when a check fails; every check prints "ok:" or "FAIL:".
set -euo pipefail
what=${1:?what to check (see the header)}
shift
repo=/vagrant venv=/opt/ebpf_nb/venv user=student workdir=/home/student/ebpf_nb ip=127.0.0.1 port=8888
while [ $# -gt 0 ]; do
  case "$1" in
    --repo) repo=$2 ;; --venv) venv=$2 ;; --user) user=$2 ;; --workdir) workdir=$2 ;;
    --ip) ip=$2 ;; --port) port=$2 ;;
    *) echo "guest_checks.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
home=$(getent passwd "$user" | cut -d: -f6 || true)
runtime=$home/.local/share/jupyter/runtime
launcher=/usr/local/libexec/ebpf-nb-kernel
failures=0

# shellcheck source-path=SCRIPTDIR source=checks_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/checks_lib.sh"
as_user() { runuser -u "$user" -- "$@"; }
token() { sed -n 's/^EBPF_NB_TOKEN=//p' /etc/ebpf_nb/lab.env; }
lab() { # code: run it in a kernel started by the service's JupyterLab, print its stdout
  "$venv/bin/python" "$repo/tests/vm/guest/lab_client.py" --port "$port" --host "$listen_ip" --code "$1"
}
http_status() { curl -s -o /dev/null -w '%{http_code}' "$1"; }
listen_ip=$ip
[ "$ip" != 0.0.0.0 ] || listen_ip=127.0.0.1

state() {
  {
    dpkg-query -W -f='${Package} ${Version} ${Status}\n'
    cat /etc/fstab /etc/passwd /etc/group
    find /etc/ebpf_nb /etc/sudoers.d /etc/systemd/system /usr/local "$venv" "$workdir" \
      -xdev -printf '%p %s %T@ %m %u\n' 2>/dev/null | sort
    systemctl show -p MainPID --value ebpf-nb-lab.service 2>/dev/null || true
  } | sha256sum
}

refusals() {
  step "bad input: provision.sh refuses before any change"
  local before out rc
  before=$(state)
  out=$(setpriv --reuid=65534 --regid=65534 --clear-groups bash "$repo/vagrant/provision.sh" --repo "$repo" 2>&1) && rc=0 || rc=$?
  echo "$out"
  check "without root: exit 1, says it must run as root" sh -c "[ $rc = 1 ] && grep -q 'must run as root' <<'OUT'
$out
OUT"
  printf 'ID=fakeos\nPRETTY_NAME="Fake OS 1"\n' > /tmp/fake-os-release
  # shellcheck disable=SC2016  # $0 and $1 are expanded by that inner sh
  out=$(unshare --mount sh -c 'mount --bind /tmp/fake-os-release /etc/os-release && exec bash "$0" --repo "$1" --vm --user student' \
        "$repo/vagrant/provision.sh" "$repo" 2>&1) && rc=0 || rc=$?
  echo "$out"
  check "unsupported distribution: exit 1, names it" sh -c "[ $rc = 1 ] && grep -q \"unsupported distribution 'Fake OS 1'\" <<'OUT'
$out
OUT"
  out=$(bash "$repo/vagrant/provision.sh" --repo "$repo" --vm --user nosuchuser 2>&1) && rc=0 || rc=$?
  echo "$out"
  check "an unknown --user without --create-user: exit 1, says how to create it" sh -c "[ $rc = 1 ] && grep -q 'add --create-user' <<'OUT'
$out
OUT"
  check "refusals changed nothing" test "$before" = "$(state)"
}

cannot_write() { # path...: USER cannot create, change or remove it (it exists: no vacuous pass)
  local path
  for path in "$@"; do
    if [ ! -e "$path" ]; then fail "$path exists (checked before trying to write it)"; continue; fi
    if as_user sh -c "echo x >> '$path'" 2>/dev/null || as_user rm -f "$path" 2>/dev/null || [ ! -e "$path" ]; then
      fail "$user cannot change $path"
    else
      ok "$user cannot change $path"
    fi
  done
}

service() {
  step "the JupyterLab service and its account"
  local url main_pid owner out rc bad listeners
  check "ebpf-nb-lab is enabled" systemctl is-enabled --quiet ebpf-nb-lab.service
  url=$(ebpf-nb-url --wait 300) || url=
  echo "ebpf-nb-url: ${url%%token=*}token=(hidden)"
  check "ebpf-nb-url prints the tokenized URL of the first notebook" \
    grep -q "^http://127.0.0.1:[0-9]*/lab/tree/notebooks/00_setup.ipynb?token=$(token)\$" <<<"$url"
  main_pid=$(systemctl show -p MainPID --value ebpf-nb-lab.service)
  owner=$(ps -o user= -p "$main_pid" | tr -d ' ' || true)
  echo "JupyterLab: pid $main_pid, user '$owner'"
  check "JupyterLab runs as $user (pid $main_pid)" test "$main_pid" != 0 -a "$owner" = "$user"
  check "JupyterLab serves $workdir" test "$(readlink "/proc/$main_pid/cwd")" = "$workdir"
  listeners=$(ss -Hltn "sport = :$port" | awk '{print $4}' | sort -u | tr '\n' ' ')
  echo "listening on port $port: $listeners"
  check "JupyterLab listens on $ip:$port only" test "$listeners" = "$ip:$port "
  check "the token is required (403 without it)" test "$(http_status "http://$listen_ip:$port/api/status")" = 403
  check "the token works (200 with it)" test "$(http_status "http://$listen_ip:$port/api/status?token=$(token)")" = 200

  step "$user: no root but the kernel launcher, and only its own folder to write"
  check "$user exists and is not root" test -n "$home" -a "$(id -u "$user")" != 0
  out=$(as_user sudo -n /bin/true 2>&1) && rc=0 || rc=$?
  check "$user has no general sudo right (sudo -n true refused: $out)" test "$rc" != 0
  out=$(sudo -n -l -U "$user" 2>&1 || true)
  echo "$out"
  check "$user's only sudo right is the kernel launcher" sh -c \
    "[ \$(grep -c NOPASSWD <<'OUT'
$out
OUT
) = 1 ] && grep -q 'NOPASSWD: $launcher\$' <<'OUT'
$out
OUT"
  check "root has no password to su to (locked)" sh -c "passwd -S root | awk '{print \$2}' | grep -qx L"
  check "$user is in no privileged group (sudo, adm, wheel, disk, docker, lxd, libvirt)" sh -c \
    "! id -nG $user | tr ' ' '\n' | grep -qxE 'sudo|adm|wheel|disk|docker|lxd|libvirt|root'"
  cannot_write "$repo/vagrant/Vagrantfile" "$repo/vagrant/provision.sh" "$repo/ebpf_nb/__init__.py" \
    "$repo/notebooks/00_setup.ipynb" "$launcher" /etc/sudoers.d/ebpf-nb \
    "$(ls "$venv"/lib/python3*/site-packages/ebpf_nb/__init__.py)"
  check "the guest holds no copy of .git" test ! -e "$repo/.git"
  check "the kit in the root kernel's venv is an installed copy, not the shared tree" \
    "$venv/bin/python" -c 'import ebpf_nb, sys; sys.exit("site-packages" not in ebpf_nb.__file__)'
  check "$workdir belongs to $user and holds the tutorials and labs" sh -c \
    "[ \$(stat -c %U $workdir) = $user ] && [ -f $workdir/notebooks/00_setup.ipynb ] && [ -f $workdir/labs/01_hello_world/lab.ipynb ]"
  check "$workdir's notebooks are the kit's, solutions left out" sh -c \
    "cmp -s $repo/notebooks/02_maps.ipynb $workdir/notebooks/02_maps.ipynb && [ -z \"\$(find $workdir -name solution.ipynb)\" ]"
  check "$user can save work in $workdir" as_user sh -c "echo saved > $workdir/.probe && rm $workdir/.probe"

  step "the kernel launcher takes only what Jupyter passes"
  out=$(as_user sudo -n "$launcher" -c 'import os' 2>&1) && rc=0 || rc=$?
  check "the launcher refuses a command line without a connection file ($out)" test "$rc" = 2
  as_user mkdir -p "$runtime"
  as_user sh -c "echo '{}' > $runtime/kernel-probe.json; echo '{}' > /tmp/kernel-elsewhere.json"
  for bad in "-f /tmp/kernel-elsewhere.json" "-f $runtime/../runtime/kernel-probe.json" \
             "-f /etc/ebpf_nb/lab.env" \
             "-f $runtime/kernel-probe.json --IPKernelApp.code_to_run=print(1)" \
             "-f $runtime/kernel-probe.json --IPKernelApp.exec_lines=print(1)" \
             "-f $runtime/kernel-probe.json --IPKernelApp.exec_files=/tmp/x.py" \
             "-f $runtime/kernel-probe.json --IPKernelApp.ip=0.0.0.0" \
             "-f $runtime/kernel-probe.json --ip=0.0.0.0"; do
    # shellcheck disable=SC2086  # the options are meant to split
    out=$(as_user sudo -n "$launcher" $bad 2>&1) && rc=0 || rc=$?
    check "the launcher refuses: $bad ($(head -n 1 <<<"$out"))" test "$rc" = 2
  done
  rm -f /tmp/kernel-elsewhere.json "$runtime/kernel-probe.json"
  check "the launcher starts Python isolated (-I) from the root-owned venv" \
    grep -q "^exec $venv/bin/python -I -m ipykernel_launcher" "$launcher"
  check "that venv is root's to write, nobody else's" sh -c \
    "[ \$(stat -c %U $venv) = root ] && [ -z \"\$(find $venv -xdev \\( -perm -o+w -o -perm -g+w \\) ! -type l -print -quit)\" ]"

  step "a kernel started by JupyterLab"
  out=$(lab 'import os; print("euid", os.geteuid())' 2>&1) && rc=0 || rc=$?
  echo "$out"
  check "it runs as root (euid 0)" grep -qx "euid 0" <<<"$out"
  out=$(lab 'from bcc import BPF
b = BPF(text="int f(void *ctx) { return 0; }")
b.attach_kprobe(event=b.get_syscall_fnname("getpid"), fn_name="f")
print("kprobes attached", b.num_open_kprobes())' 2>&1) && rc=0 || rc=$?
  echo "$out"
  check "it loads and attaches a BCC kprobe" grep -qx "kprobes attached 1" <<<"$out"
  sleep 3  # the DELETE above returns before the kernel process is gone
  check "no kernel left running after JupyterLab shut it down" sh -c '! pgrep -af "[i]pykernel_launcher"'
  grading_unit_idle
}

grading_unit_idle() { # the grading unit is installed, and a boot without a job disk never ran it
  check "ebpf-nb-grade.service is installed" test -f /etc/systemd/system/ebpf-nb-grade.service
  check "no job disk on this boot" test ! -e /dev/disk/by-id/virtio-ebpfnb-job
  check "ebpf-nb-grade.service never started on this boot" test \
    "$(systemctl show -p ExecMainStartTimestampMonotonic --value ebpf-nb-grade.service)" = 0
}

kprobes() {
  step "guest tests (tests/vm/guest): kprobes, kprobe__sys_* names, the book's hello world"
  cd "$repo"
  check "tests/vm/guest" env EBPF_NB_VM_GUEST=1 "$venv/bin/python" -B -m pytest -p no:cacheprovider -v tests/vm/guest
  step "main suite: kernel tests selected by -k 'syscall or kprobe', and tests/kernel/test_probes_real.py"
  check "pytest -m kernel -k 'syscall or kprobe'" "$venv/bin/python" -B -m pytest -p no:cacheprovider -q \
    -m kernel -k "syscall or kprobe" --ignore=tests/vm --ignore=tests/e2e --ignore=tests/cleanroot tests
  check "tests/kernel/test_probes_real.py" "$venv/bin/python" -B -m pytest -p no:cacheprovider -q tests/kernel/test_probes_real.py
}

notebooks() {
  step "every notebook, run by $user through the service's kernel (the launcher, as root)"
  as_user mkdir -p "$runtime"
  cd "$repo"
  # tests/kernel/test_notebooks.py as USER: nbclient starts each kernel from the service's kernelspec
  # (sudo -n launcher), its connection file in USER's runtime directory, the only place the
  # launcher takes one from. Nothing is written to the read-only kit (no site cache, no bytecode).
  check "tests/kernel/test_notebooks.py -m kernel (tutorials, solutions, student labs)" as_user env \
    JUPYTER_PATH=/usr/local/share/ebpf_nb/jupyter EBPF_NB_KERNEL_RUNTIME_DIR="$runtime" \
    EBPF_NB_SITE_CACHE=off HOME="$home" \
    "$venv/bin/python" -B -m pytest -p no:cacheprovider -v --durations=0 -m kernel tests/kernel/test_notebooks.py
}

rebooted() {
  step "after a reboot: mounts and service are back"
  local url out
  check "tracefs mounted on /sys/kernel/tracing" sh -c 'findmnt -n -t tracefs /sys/kernel/tracing >/dev/null'
  check "bpffs mounted on /sys/fs/bpf" sh -c 'findmnt -n -t bpf /sys/fs/bpf >/dev/null'
  check "fstab holds tracefs and bpffs" sh -c 'grep -q " /sys/kernel/tracing tracefs " /etc/fstab && grep -q " /sys/fs/bpf bpf " /etc/fstab'
  url=$(ebpf-nb-url --wait 300) || url=
  check "JupyterLab came back at boot and answers" test -n "$url"
  check "ebpf-nb-lab is active" systemctl is-active --quiet ebpf-nb-lab.service
  out=$(lab 'import os; print("euid", os.geteuid()); print("tracing", os.path.exists("/sys/kernel/tracing/trace_pipe"))' 2>&1) || true
  echo "$out"
  check "its kernel is root" grep -qx "euid 0" <<<"$out"
  check "tracefs visible to that kernel" grep -qx "tracing True" <<<"$out"
  grading_unit_idle
}

case "$what" in
  state) state; exit 0 ;;
  refusals|service|kprobes|notebooks|rebooted) "$what" ;;
  *) echo "guest_checks.sh: unknown check '$what'" >&2; exit 2 ;;
esac
step "$what: $failures failed checks"
[ "$failures" = 0 ]
