#!/usr/bin/env bash
# Tier 1 of the VM tests: static checks, seconds. `vagrant validate` on the Vagrantfile (with the
# libvirt provider's own checks, and once ignoring providers), a bad setting must be refused,
# and shellcheck on every shell script of the repository (tracked or not, .venv excluded).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
failures=0
check() { local what=$1; shift; if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; failures=$((failures + 1)); fi; }

cd "$repo/vagrant"
check "vagrant validate (libvirt provider)" env VAGRANT_DEFAULT_PROVIDER=libvirt vagrant validate
check "vagrant validate --ignore-provider" vagrant validate --ignore-provider
check "a bad EBPF_NB_MEMORY is refused" sh -c '! EBPF_NB_MEMORY=lots vagrant validate --ignore-provider >/dev/null 2>&1'

cd "$repo"
# Every shell script of the repository (tracked or not, but not what git ignores: .venv,
# node_modules of the JupyterLab extension's build).
mapfile -t scripts < <({ git ls-files -co --exclude-standard -- '*.sh'; echo .ci/run; } | sort -u)
check "shellcheck on ${#scripts[@]} scripts: ${scripts[*]}" shellcheck -x "${scripts[@]}"
[ "$failures" = 0 ]
