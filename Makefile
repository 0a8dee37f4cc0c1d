# ebpf_nb: the two commands a newcomer needs are `make lab` and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8888
SUDO   := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: setup lab test test-fast lint bench labs check-notebooks clean

## setup: install BCC, clang, libbpf, bpftool, headers, mount tracefs/bpffs, create .venv (idempotent)
setup:
	$(SUDO) bash vagrant/provision.sh --repo $(CURDIR)

## lab: JupyterLab on 127.0.0.1:$(PORT) with token auth, opened on the tutorial
lab: setup
	$(SUDO) $(PY) -m ebpf_nb.cli lab --port $(PORT)

# ruff, then mypy (the whole package; strict on the public API: pyproject.toml [tool.mypy]).
# Not as root: they write their caches into the checkout.
define run_lint
$(VENV)/bin/ruff check ebpf_nb tests benchmarks tools
$(PY) -m mypy
endef

## test: lint, then the whole suite, real kernel included (fails, never skips, when the kernel
## cannot be used)
test:
	$(SUDO) bash vagrant/provision.sh --repo $(CURDIR) --test-tools
	$(run_lint)
	$(SUDO) $(PY) -m pytest --durations=15 $(PYTEST_ARGS)

## lint: only the checks `make test` runs before pytest (ruff, mypy)
lint: setup
	$(run_lint)

## test-fast: the unit tests only (tests/unit: no kernel, no root)
test-fast: setup
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

## bench: speed against plain BCC, printed as a table and written to benchmarks/results.json
bench: setup
	$(SUDO) $(PY) -m benchmarks

## labs: build the student notebooks from the instructors' solution notebooks
labs: setup
	$(PY) -m ebpf_nb.cli labs build

## check-notebooks: fail when a student notebook is stale against its solution
check-notebooks: setup
	$(PY) -m ebpf_nb.cli labs build --check

## labextension: rebuild the prebuilt JupyterLab extension (%%bpf cells as C) from labextension/
## with the npm registry's pinned packages, then reinstall the kit so JupyterLab loads the new build
.PHONY: labextension site
labextension: setup
	cd labextension && npm ci --no-audit --no-fund && PATH=$(CURDIR)/$(VENV)/bin:$$PATH npm run build
	$(PY) -m pip install -q --no-deps -e .

## site: execute every tutorial and lab solution on the real kernel (reusing those make test just
## ran), build the static site in build/site (open build/site/index.html) and refresh the README's
## picture docs/images/bpf-cell.png
site:
	$(SUDO) $(PY) -m tools.site.build build/site --executed build/site-executed --readme-picture docs/images/bpf-cell.png

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

## test-clean-root: the README's quick start from nothing, in a clean Debian root on this kernel
## (faults refused, `make test`, provision again changes nothing, `make lab` serves); --full: FULL=1
.PHONY: test-clean-root
test-clean-root:
	$(SUDO) bash tests/cleanroot/run.sh $(if $(FULL),--full)

## test-vm: vagrant validate + shellcheck, then the real `vagrant up --provider=libvirt` of
## vagrant/Vagrantfile (libvirtd in its own network namespace, QEMU TCG) on a Debian 12 box built
## from the VM tests' cached image; in the guest (tests/vm/guest_checks.sh): provisioning refusals
## and a re-run that changes nothing, the service as "student", the launcher's refusals, kprobe
## tests, every tutorial, lab solution and student lab through the launcher; the adversarial
## class graded in the disposable VM booted from the halted guest's disk; halt/up serve again;
## destroy leaves nothing. test-vagrant: the same without tier 1
.PHONY: test-vm test-vagrant test-vm-bare
test-vm: setup
	$(SUDO) bash tests/vm/host_deps.sh
	$(SUDO) bash tests/vm/tier1.sh
	$(SUDO) bash tests/vagrant/run.sh

test-vagrant: setup
	$(SUDO) bash tests/vm/host_deps.sh
	$(SUDO) bash tests/vagrant/run.sh

## test-vm-bare (slow extra, not in CI, ~25 min): provision.sh on a bare Debian image (no Vagrant,
## no vagrant account) booted by QEMU directly, the same guest checks, a reboot
test-vm-bare:
	$(SUDO) bash tests/vm/host_deps.sh
	$(SUDO) bash tests/vm/run.sh
