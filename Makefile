# verify-path: one-command setup, demo and tests. Run as root on Debian/Ubuntu.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages (design.md section 5): QEMU + libvirt for the lab, headers to build
# libvirt-python, the capture oracles (tcpdump, tshark), iperf3, iproute2/util-linux for namespaces;
# clang, libbpf-dev and bpftool build the eBPF counter (design.md section 6); gcc/binutils the lab's
# dirtying guest; chromium renders the HTML reports in the browser tests.
APT_PACKAGES := qemu-system-x86 libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients \
	libvirt-dev pkg-config tcpdump tshark iperf3 libpcap0.8 iproute2 util-linux ethtool \
	libcap2-bin procps python3-venv gcc binutils clang libbpf-dev libbpf1 bpftool chromium \
	openssh-server openssh-client
STAMP := $(VENV)/.installed

.PHONY: install system-deps users venv ebpf demo cluster-demo test lint typecheck unit lab-up lab-down lab-status clean

install: system-deps users venv ebpf

# The kernel counter, compiled against this kernel's BTF (no headers package exists for it).
ebpf: venv
	@$(BIN)/python -m verifier.capture.ebpf.build >/dev/null || echo "eBPF counter not built: the ring engine will count"

system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# libvirt's QEMU driver fails to initialise without these (design.md section 5).
users:
	@getent group kvm >/dev/null || groupadd -r kvm
	@getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
	@id -u libvirt-qemu >/dev/null 2>&1 || useradd -r -g libvirt-qemu -G kvm -M -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: install
	$(BIN)/verify-path lab up
	$(BIN)/verify-path lab exec node1 -- $(BIN)/verify-path vm01 node2 --expect san0 --round-trip ; \
	status=$$?; echo "verify-path exited $$status (1 = the stream took the wrong link, as in the motivating case)"; \
	echo; echo "now with the fix: --via san0"; \
	$(BIN)/verify-path lab exec node1 -- $(BIN)/verify-path vm01 node2 --expect san0 --via san0 --round-trip

# Three nodes, Ansible run from node1 over the lab's SSH, every ordered pair probed, then the matrix.
cluster-demo: install
	$(BIN)/verify-path lab up --nodes 3
	$(BIN)/verify-path lab exec node1 -- $(CURDIR)/$(BIN)/ansible-playbook -i ansible/inventory/lab.ini \
		ansible/verify-cluster.yml -e verify_path_captures=$(CURDIR)/captures
	$(BIN)/verify-path matrix $$(ls -d $(CURDIR)/captures/matrix-* | tail -n 1)

lint: venv
	$(BIN)/ruff check verifier tests

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -m "not lab"

test: install lint typecheck
	$(BIN)/pytest

bench: install
	$(BIN)/python -m verifier.bench --lab

lab-up: install
	$(BIN)/verify-path lab up

lab-down:
	@if [ -x $(BIN)/verify-path ]; then $(BIN)/verify-path lab down; else echo "not installed: nothing to take down"; fi

lab-status: venv
	$(BIN)/verify-path lab status

clean: lab-down
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
