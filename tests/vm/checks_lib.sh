# shellcheck shell=bash
# The check helpers of the guest scripts (guest_checks.sh, guest_run.sh), sourced by both so that
# each prints its steps and results the same way. The sourcing script sets failures=0 first.
step() { printf '\n=== %s  [%s, +%ss]\n' "$*" "$(date -u +%T)" "$SECONDS"; }
ok() { printf 'ok: %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*"; failures=$((failures + 1)); }
check() { # description command...: runs the command, records ok/FAIL
  local what=$1; shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}
