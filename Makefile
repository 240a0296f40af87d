# The two commands a newcomer needs: `make run` and `make test`.
# Everything else here serves them (or the benchmarks).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STEER  := $(VENV)/bin/steer
# Debian packages the test suite and `make run` need; installed only when missing:
# containerd and what pods need (runc, CNI plugins), the cluster registry and the
# tools that build images without internet (skopeo, busybox-static, gcc for pause),
# network namespaces (iproute2, nsenter from util-linux), Services in nftables (and
# conntrack, which deletes stale UDP flows),
# the simulated bare-metal hosts (an sshd per host, supervisord for their services,
# sudo for a login that is not root), etcd (the store benchmark and its tests),
# nginx (the Ingress addon's proxy, built into its image), chromium (the dashboard's
# browser test, driven by Playwright), prometheus (the monitoring addon's image;
# promtool checks its rules in the tests).
DEB_TEST_PACKAGES ?= containerd runc containernetworking-plugins docker-registry skopeo \
                     umoci busybox-static gcc libc6-dev iproute2 util-linux nftables \
                     conntrack openssh-server supervisor sudo etcd-server prometheus nginx \
                     chromium
PYTEST_WORKERS ?= 2

.PHONY: run test lint ansible-lint unit cri-proto etcd-proto k8s-proto deb-packages bench-store bench-api bench-control bench-pods bench-network bench-ingress down clean

$(VENV)/.installed: setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

# Without systemd, a package's postinst starts its service through invoke-rc.d
# (openssh-server would leave an sshd listening on this machine): a policy-rc.d that
# exits 101 denies that for the install, and is removed after unless it was there.
deb-packages:
	@missing=""; for p in $(DEB_TEST_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  policy=/usr/sbin/policy-rc.d; \
	  if [ ! -e $$policy ]; then printf '#!/bin/sh\nexit 101\n' >$$policy; \
	    chmod 755 $$policy; trap 'rm -f $$policy' EXIT; fi; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; fi

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check store control agent cli tests bench
	$(VENV)/bin/lint-imports
	$(MAKE) --no-print-directory ansible-lint

# The Ansible collection (ansible/) on ansible-lint's production profile. Ansible finds
# collections only under ansible_collections/<namespace>/<name>: a link in the venv.
ANSIBLE_TREE := $(abspath $(VENV))/ansible
ansible-lint: $(VENV)/.installed
	@mkdir -p $(ANSIBLE_TREE)/ansible_collections/steersman
	@ln -sfn $(CURDIR)/ansible $(ANSIBLE_TREE)/ansible_collections/steersman/cluster
	cd ansible && ANSIBLE_COLLECTIONS_PATH=$(ANSIBLE_TREE) $(abspath $(VENV))/bin/ansible-lint --offline --profile production

# pytest exits 5 when it collects nothing; any non-zero exit fails the target.
# --dist loadfile: a file's tests share one worker, so a module-scoped cluster starts
# once and tests that build on each other (tests/e2e) keep their order.
test: $(VENV)/.installed deb-packages lint
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile -p no:cacheprovider tests

unit: $(VENV)/.installed
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/unit

# After editing agent/runtime/cri/api.proto: regenerate the checked-in CRI modules.
cri-proto: $(VENV)/.installed
	$(PY) -m agent.runtime.cri.generate

# The store benchmark's stubs for etcd's gRPC API (bench/etcdpb/, bench only).
etcd-proto: $(VENV)/.installed
	$(PY) -m bench.etcdpb.generate

# The API server's protobuf field table (control/api/protobuf/messages.json), read from
# the descriptors and Go types in a kubectl binary (KUBECTL=path to use another one).
k8s-proto: $(VENV)/.installed
	$(PY) -m control.api.protobuf.generate $(KUBECTL)

# `make run`: a local cluster (3 store nodes, control plane, 3 nodes each with its own
# containerd in its own network namespace, the cluster registry), the hello
# application from its image, its page fetched through its Service and the Service's
# name resolved by cluster DNS from a pod. The cluster keeps running; `make down` stops it.
STEER_HOME ?= $(HOME)/.steer
FETCH      := $(PY) -c "import sys, urllib.request as u; print(u.urlopen(sys.argv[1], timeout=3).read().decode().strip())"
export STEER_HOME

run: $(VENV)/.installed deb-packages
	@$(STEER) up --nodes 3
	@example=examples/hello.yaml; \
	if [ "$$($(STEER) get nodes -l node.steersman.io/runtime=process -o name 2>/dev/null)" ]; then \
	  example=examples/hello-process.yaml; fi; \
	echo; echo "== deploy $$example: 3 replicas of a small HTTP server and a Service =="; \
	$(STEER) apply -f $$example
	$(STEER) rollout status deployment/hello --timeout 180
	@echo; echo "== fetch the page through the Service's ClusterIP (the service proxy spreads requests) =="
	@ip=$$($(STEER) get service hello -o jsonpath='{.spec.clusterIP}'); via=""; \
	if [ -z "$$($(STEER) get nodes -l node.steersman.io/runtime=process -o name 2>/dev/null)" ]; then \
	  echo "(from node-1's network namespace: ClusterIPs exist only inside the nodes)"; \
	  via="$(STEER) node-shell node-1 --"; fi; \
	for i in 1 2 3 4 5 6; do echo "GET http://$$ip/ -> $$($$via $(FETCH) http://$$ip/)"; done
	@if [ -z "$$($(STEER) get nodes -l node.steersman.io/runtime=process -o name 2>/dev/null)" ]; then \
	  pod=$$($(STEER) get pods -l app=hello -o jsonpath='{.items[0].metadata.name}'); \
	  echo; echo "== $$pod resolves the Service's name through cluster DNS (kube-system/kube-dns) =="; \
	  $(STEER) exec $$pod -- nslookup hello.default.svc.cluster.local; fi
	@echo; echo "== the pods =="
	$(STEER) get pods -o wide
	@echo; echo "The cluster keeps running. Go on with:"
	@echo "  $(STEER) status                          # its processes and nodes"
	@echo "  $(STEER) get deployments,pods,services"
	@echo "  $(STEER) scale deployment/hello --replicas=1"
	@echo "  $(STEER) logs deployment/hello"
	@echo "  $(STEER) top pods                        # cpu and memory of each pod"
	@echo "  $(STEER) node-shell node-1                # a shell where pod and Service IPs answer"
	@echo "  $(STEER) describe deployment hello"
	@echo "  export KUBECONFIG=$(STEER_HOME)/kubeconfig; kubectl get pods   # kubectl works too"
	@echo "Stop it with: make down   (or $(STEER) down; add --purge to delete its data)"

down: $(VENV)/.installed
	$(STEER) down

bench-store: $(VENV)/.installed
	@command -v etcd >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server)
	$(PY) -m bench.store

bench-api: $(VENV)/.installed
	$(PY) -m bench.api
	$(PY) -m bench.api_protobuf

bench-control: $(VENV)/.installed
	$(PY) -m bench.control

bench-pods: $(VENV)/.installed
	$(PY) -m bench.pods

bench-network: $(VENV)/.installed
	$(PY) -m bench.network

# Requests/s and p99 through the Ingress addon (nginx) against straight to the pod.
bench-ingress: $(VENV)/.installed
	$(PY) -m bench.ingress

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
