# The two commands a newcomer needs: `make run` and `make test`.
# Everything else here serves them (or the benchmarks).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STEER  := $(VENV)/bin/steer
# Debian packages the test suite needs; installed only when missing.
# (The store tests need none yet; later parts add runc, openssh-server, iproute2...)
DEB_TEST_PACKAGES ?=
PYTEST_WORKERS ?= 2

.PHONY: run test lint unit deb-packages bench-store bench-api bench-control down clean

$(VENV)/.installed: setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

deb-packages:
	@missing=""; for p in $(DEB_TEST_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; fi

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check store control agent cli tests bench
	$(VENV)/bin/lint-imports

# pytest exits 5 when it collects nothing; any non-zero exit fails the target.
test: $(VENV)/.installed deb-packages lint
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) -p no:cacheprovider tests

unit: $(VENV)/.installed
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/unit

run: $(VENV)/.installed
	@$(STEER) store up
	@echo; echo "== write, read and watch a few keys =="
	$(STEER) store put /demo/greeting "hello from steersman"
	$(STEER) store put /demo/answer 42
	$(STEER) store put /demo/greeting "hello again"
	$(STEER) store get /demo/ --prefix
	$(STEER) store watch /demo/ --prefix --rev 1 --count 3
	@echo; echo "== members and their status =="
	$(STEER) store members
	$(STEER) store status
	@echo; echo "The store keeps running. Try: $(STEER) store --help"
	@echo "Stop it with: $(STEER) store down"

down: $(VENV)/.installed
	$(STEER) store down

bench-store: $(VENV)/.installed
	@command -v etcd >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server)
	$(PY) -m bench.store

bench-api: $(VENV)/.installed
	$(PY) -m bench.api

bench-control: $(VENV)/.installed
	$(PY) -m bench.control

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
