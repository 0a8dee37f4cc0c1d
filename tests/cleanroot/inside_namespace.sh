#!/usr/bin/env bash
# Part of tests/cleanroot/run.sh: runs in its private mount and pid namespaces, as root.
# Builds the clean root from $image under $work, then runs the quick start inside it.
set -euo pipefail
: "${work:?}" "${image:?}" "${full:?}"
root=$work/root
log() { printf '\033[1m[clean root]\033[0m %s\n' "$*"; }
failures=0
ok() { printf 'ok: %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*"; failures=$((failures + 1)); }

mount -o loop,ro "$image/rootfs.img" "$work/lower"
mount -t overlay overlay -o "lowerdir=$work/lower,upperdir=$work/upper,workdir=$work/overlay-work" "$root"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"   # a new sysfs: no tracefs, debugfs or bpffs mounted on it
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
mount -t tmpfs -o mode=0755 tmpfs "$root/run"

# What every new machine of this kind has before anyone installs anything: its apt sources and
# settings, its trust anchors (registries behind a TLS-inspecting proxy), its DNS.
rm -f "$root/etc/resolv.conf"; cp -L /etc/resolv.conf "$root/etc/resolv.conf"
# (the image's apt sources are the host's already: tests/vm/build_image.sh wrote them)
for f in /etc/apt/apt.conf.d/*; do
  [ -e "$root/etc/apt/apt.conf.d/$(basename "$f")" ] || cp "$f" "$root/etc/apt/apt.conf.d/"
done
cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
chroot "$root" update-ca-certificates >/dev/null 2>&1
printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$root/etc/pip.conf"
mkdir -p "$root/root/ebpf_nb"
tar -C "$root/root/ebpf_nb" -xf "$work/tree.tar"

# A command inside the clean root, as a new user's root shell would run it.
in_root() {
  chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    ${EBPF_NB_LOCK_WAIT:+EBPF_NB_LOCK_WAIT=$EBPF_NB_LOCK_WAIT} \
    bash -c "cd /root/ebpf_nb && $1"
}
# A fingerprint of what setup may change: packages, the headers link, the venv.
state() {
  { cat "$root/var/lib/dpkg/status"; ls -la "$root/lib/modules" "$root/root/ebpf_nb"; } | sha256sum
}
kernel=$(uname -r)
log "clean root: $(sed -n 's/^PRETTY_NAME=//p' "$root/etc/os-release"), kernel $kernel, /lib/modules has: $(find "$root/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f ')"
[ ! -e "$root/lib/modules/$kernel" ] || { fail "the clean root already has /lib/modules/$kernel"; exit 1; }
! chroot "$root" sh -c 'command -v make || command -v clang || python3 -c "import bcc"' >/dev/null 2>&1 \
  || { fail "the clean root already has make, clang or bcc"; exit 1; }

# --- 1. Faults: each refused with one line that says what to do, and nothing changes ------------
refused() { # description expected-text output exit-code
  if [ "$4" != 0 ] && grep -q -- "$2" <<<"$3" && [ "$(state)" = "$before" ]; then
    ok "$1: refused, nothing changed: $(grep -m1 -- "$2" <<<"$3")"
  else
    fail "$1: expected a refusal with '$2' and no change; exit $4, output:"; printf '%s\n' "$3" | tail -n 8
  fi
}
provision=(bash vagrant/provision.sh --repo /root/ebpf_nb)
before=$(state)
t=$SECONDS

sed -e 's/^VERSION_ID=.*/VERSION_ID="11"/' -e 's/^PRETTY_NAME=.*/PRETTY_NAME="Debian GNU\/Linux 11 (bullseye)"/' \
  "$root/etc/os-release" > "$work/os-release.old"
mount --bind "$work/os-release.old" "$root/etc/os-release"
rc=0; out=$(in_root "${provision[*]}" 2>&1) || rc=$?
umount "$root/etc/os-release"
refused "Debian 11" "too old: use Debian 12" "$out" "$rc"

mkdir -p "$work/empty"
mount --bind "$work/empty" "$root/sys/kernel/btf"
rc=0; out=$(in_root "${provision[*]}" 2>&1) || rc=$?
umount "$root/sys/kernel/btf"
refused "a kernel without BTF" "has no BTF" "$out" "$rc"

mount -t tmpfs -o size=64m tmpfs "$root/var/cache/apt/archives"
rc=0; out=$(in_root "${provision[*]}" 2>&1) || rc=$?
umount "$root/var/cache/apt/archives"
refused "a full disk" "not enough disk space" "$out" "$rc"

# Another package manager at work: a process holds dpkg's lock for the whole attempt.
chroot "$root" python3 -c '
import fcntl, os, sys, time
fd = os.open("/var/lib/dpkg/lock-frontend", os.O_RDWR | os.O_CREAT, 0o640)
fcntl.lockf(fd, fcntl.LOCK_EX)
open("/tmp/locked", "w").close()
time.sleep(60)' &
holder=$!
for _ in $(seq 50); do [ -e "$root/tmp/locked" ] && break; sleep 0.2; done
rc=0; out=$(EBPF_NB_LOCK_WAIT=4 in_root "${provision[*]}" 2>&1) || rc=$?
kill "$holder" 2>/dev/null || true; wait "$holder" 2>/dev/null || true
refused "a held dpkg lock" "holds dpkg's lock" "$out" "$rc"

rc=0; out=$(unshare --net bash -c "$(declare -f in_root); root=$root; in_root '${provision[*]}'" 2>&1) || rc=$?
# apt-get update may leave (empty) list files behind: that is not a half-done installation.
refused "no network" "cannot be reached: check the network" "$out" "$rc"
log "faults checked in $((SECONDS - t)) s"

# --- 2. The README's quick start: the prerequisite, then `make test` from nothing ---------------
t=$SECONDS
in_root 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq make >/dev/null' \
  || { fail "the README's prerequisite: apt-get install make"; exit 1; }
log "prerequisite (make) in $((SECONDS - t)) s"

if [ "$full" = 1 ]; then tests="" ; else tests="PYTEST_ARGS=tests/cleanroot"; fi
t=$SECONDS
if in_root "EBPF_NB_CLEAN_ROOT=1 make test $tests" 2>&1 | tee "$work/make-test-1.log"; then rc=0; else rc=$?; fi
first=$((SECONDS - t))
if [ "$rc" = 0 ]; then ok "first make test from nothing: ${first} s"; else fail "first make test (exit $rc)"; fi
if grep -q "no headers packaged for kernel $kernel" "$work/make-test-1.log"; then
  ok "the generic-headers fallback ran"
else
  fail "the generic-headers fallback did not run"
fi
target=$(readlink "$root/lib/modules/$kernel/build" || true)
case "$target" in /usr/src/linux-headers-*) ok "headers linked: $target" ;; *) fail "headers not linked ($target)" ;; esac

rc=0; out=$(in_root "${provision[*]} --test-tools" 2>&1) || rc=$?
if [ "$rc" = 0 ] && grep -q "nothing to change" <<<"$out"; then ok "second provision.sh: nothing to change"
else fail "second provision.sh (exit $rc):"; printf '%s\n' "$out" | tail -n 5; fi

# --- 3. `make lab` until its URL answers; a second `make test` ----------------------------------
# Not a terminal here, so `ebpf-nb lab` prints the URL with its token masked: the test gives it a
# known token through the environment (read from a 0600 file inside the root, never in argv).
port=$((20000 + RANDOM % 20000))
(umask 077; head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$root/root/.lab-token")
token=$(cat "$root/root/.lab-token")
t=$SECONDS
in_root "EBPF_NB_TOKEN=\$(cat /root/.lab-token) exec make lab PORT=$port" > "$work/lab.log" 2>&1 &
lab=$!
answered=0
for _ in $(seq 240); do
  if grep -q "open http://127.0.0.1:$port/lab/tree/notebooks/00_setup.ipynb" "$work/lab.log" &&
     chroot "$root" /root/ebpf_nb/.venv/bin/python -c 'import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + sys.stdin.read().strip(), timeout=5)' \
       "http://127.0.0.1:$port/api/status?token=" <<<"$token" 2>/dev/null; then
    answered=1; break
  fi
  kill -0 "$lab" 2>/dev/null || break
  sleep 0.5
done
lab_seconds=$((SECONDS - t))
if [ "$answered" = 1 ]; then
  ok "make lab printed its URL and answered with the token after ${lab_seconds} s"
else
  fail "make lab gave no working URL within ${lab_seconds} s:"; tail -n 15 "$work/lab.log"
fi
if grep -q "$token" "$work/lab.log"; then fail "make lab wrote the token to its (non-terminal) output"; fi
pkill -TERM -f "ebpf_nb.cli lab --port $port" 2>/dev/null || true
kill "$lab" 2>/dev/null || true; wait "$lab" 2>/dev/null || true

t=$SECONDS
rc=0; in_root "EBPF_NB_CLEAN_ROOT=1 make test $tests" > "$work/make-test-2.log" 2>&1 || rc=$?
second=$((SECONDS - t))
if [ "$rc" = 0 ]; then ok "second make test (nothing to install): ${second} s"
else fail "second make test (exit $rc)"; tail -n 20 "$work/make-test-2.log"; fi
tail -n 1 "$work/make-test-2.log"

log "timings: first make test ${first} s, make lab to URL ${lab_seconds} s, second make test ${second} s"
if [ "$failures" = 0 ]; then log "PASSED"; else log "FAILED: $failures"; fi
[ "$failures" = 0 ]
