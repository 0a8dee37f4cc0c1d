# ebpf_nb: the two commands a newcomer needs are `make lab` and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8888
SUDO   := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: setup lab test test-fast bench labs check-notebooks clean

## setup: install BCC, clang, libbpf, bpftool, headers, mount tracefs/bpffs, create .venv (idempotent)
setup:
	$(SUDO) bash vagrant/provision.sh --repo $(CURDIR)

## lab: JupyterLab on 127.0.0.1:$(PORT) with token auth, opened on the tutorial
lab: setup
	$(SUDO) $(PY) -m ebpf_nb.cli lab --port $(PORT)

## test: the whole suite, real kernel included (fails, never skips, when the kernel cannot be used)
test:
	$(SUDO) bash vagrant/provision.sh --repo $(CURDIR) --test-tools
	$(SUDO) $(PY) -m pytest $(PYTEST_ARGS)

## test-fast: unit tests only (no kernel)
test-fast: setup
	$(PY) -m pytest -m "not kernel" $(PYTEST_ARGS)

## bench: speed against plain BCC, printed as a table and written to benchmarks/results.json
bench: setup
	$(SUDO) $(PY) -m benchmarks

## labs: build the student notebooks from the instructors' solution notebooks
labs: setup
	$(PY) -m ebpf_nb.cli labs build

## check-notebooks: fail when a student notebook is stale against its solution
check-notebooks: setup
	$(PY) -m ebpf_nb.cli labs build --check

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

## test-vm: vagrant validate + shellcheck, then a real VM under QEMU (TCG): provision.sh inside,
## the JupyterLab service, kprobe tests, notebooks, a reboot (guest image cached in /var/cache)
.PHONY: test-vm
test-vm:
	$(SUDO) bash tests/vm/host_deps.sh
	$(SUDO) bash tests/vm/tier1.sh
	$(SUDO) bash tests/vm/run.sh
