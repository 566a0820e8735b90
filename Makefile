# berth: one node agent in place of kubelet + kube-proxy.
#
#   make setup   install what the build and the test bed need (Debian 12, root)
#   make demo    bring up the test bed, run pods and a Service on berth; Ctrl-C takes it down
#   make test    unit, integration and end-to-end tests (what CI runs)
#   make conformance  the upstream e2e suite's node-related specs on a test bed

SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin

GO       ?= go
# Built upstream binaries and images are cached outside the checkout, keyed
# by version, so that a fresh clone (CI) does not rebuild them.
export BERTH_CACHE ?= /var/cache/berth
CACHE    := $(BERTH_CACHE)
BIN      := $(CURDIR)/bin
NODES    ?= 2
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
STATICCHECK_VERSION := v0.8.2

# Debian packages: the container runtime every node runs, the kernel tools
# the proxy and the tests drive, and what the VM tests are built from. They
# are installed without their recommends (qemu's alone pull in a desktop's
# worth: GTK, GStreamer, speech recognition); what the tests use of those
# comes from a Depends or is listed here: qemu-system-x86 depends on seabios
# (the BIOS that boots the VMs' -kernel) and ipxe-qemu (the option ROM of
# their virtio-net-pci NIC); debootstrap checks signatures with gpgv and
# debian-archive-keyring, which apt itself depends on.
APT_PACKAGES := containerd runc iptables ipvsadm conntrack nftables \
	containernetworking-plugins busybox-static iproute2 util-linux procps \
	qemu-system-x86 qemu-utils e2fsprogs debootstrap cpio ca-certificates systemd dbus-daemon

# Debian packages the upstream e2e conformance images are built from (make
# conformance-deps, part of setup: make test checks the images build): a compiler and patch/bzip2/xz to build
# busybox from Debian's source, and the programs the images copy with their
# libraries (dig, nslookup, host, curl, nc, ip, ss; getent and bash are essential).
CONFORMANCE_APT := build-essential patch bzip2 xz-utils busybox-static bind9-dnsutils curl netcat-openbsd iproute2

# The test bed's binaries: built by test/tools/build-upstream.sh, cached by
# version under $(CACHE)/upstream.
UPSTREAM_DIR = $(shell test/tools/build-upstream.sh $(CACHE)/upstream | tail -n1)

# The plugins the end-to-end tests run on nodes (the mock CSI driver csimock,
# the sample device plugin, csi-sanity): built by test/tools/build-plugins.sh,
# cached under $(CACHE)/plugins; the tests find them through BERTH_PLUGINS_DIR.
PLUGINS_DIR = $(shell test/tools/build-plugins.sh $(CACHE)/plugins | tail -n1)

.PHONY: all setup apt conformance-deps conformance-images upstream plugins build install test test-vm unit lint bench demo testbed-up testbed-down clean distclean \
	conformance conformance-list e2e-tools

all: build

setup: apt conformance-deps upstream plugins build
	@echo "setup done: run 'make demo' (as root) to see the test bed, 'make test' to test"

apt:
	@if dpkg-query -W -f='$${Status}\n' $(APT_PACKAGES) 2>/dev/null | grep -qv 'install ok installed' \
	   || ! dpkg-query -W $(APT_PACKAGES) >/dev/null 2>&1; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(APT_PACKAGES); \
	else echo "apt packages: all installed"; fi

conformance-deps:
	@if [ "$$(dpkg-query -W -f='$${Status}\n' $(CONFORMANCE_APT) 2>/dev/null | grep -c '^install ok installed$$')" \
	     -ne $(words $(CONFORMANCE_APT)) ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(CONFORMANCE_APT); \
	else echo "conformance apt packages: all installed"; fi

# conformance-images builds the upstream e2e images and CoreDNS as tars under
# $(CACHE)/images/conformance (cached: a rerun is a no-op) and lists them.
conformance-images: conformance-deps
	$(GO) run ./test/images/conformance/cmd/conformance-images

upstream:
	test/tools/build-upstream.sh $(CACHE)/upstream

plugins:
	test/tools/build-plugins.sh $(CACHE)/plugins

build:
	$(GO) generate ./cri/pause
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/berth ./cmd/berth
	$(GO) build -o $(BIN)/testbed ./test/testbed/cmd/testbed

# test runs everything: the end-to-end packages bring up their own test beds
# (they need root; as non-root they skip and say why).
test: lint
	BERTH_UPSTREAM_DIR=$(UPSTREAM_DIR) BERTH_PLUGINS_DIR=$(PLUGINS_DIR) $(GO) test -count=1 -timeout 40m ./...

# install puts berth on this machine as a systemd service (berth.service);
# KUBELET=1 installs it as kubeadm's kubelet instead.
install: build
	$(BIN)/berth install $(if $(KUBELET),--kubelet) --now

# test-vm runs only the VM tests (test/vm): a Debian VM with systemd and
# IPVS, built from packages once per machine, booted under qemu. make test
# runs them too.
test-vm:
	BERTH_UPSTREAM_DIR=$(UPSTREAM_DIR) $(GO) test -count=1 -timeout 40m ./test/vm/...

# unit runs only the tests that need neither root nor the test bed.
unit:
	$(GO) test -count=1 -short $$($(GO) list ./... | grep -v /test/e2e/)

# lint checks formatting, that go.mod and go.sum are tidy, vet and
# staticcheck. Only the main module's tidiness is checked: the modules under
# test/tools pin what build-upstream.sh, build-e2e.sh and build-plugins.sh
# build from k8s.io/kubernetes, and tidy would mark those pins indirect and
# drop requirements the builds need. The plugins module's own code (csimock)
# is vetted.
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum: not tidy (diff above); run 'go mod tidy'"; exit 1; }
	$(GO) vet ./...
	cd test/tools/plugins && GOFLAGS=-mod=readonly $(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# bench runs the benchmarks (see docs/benchmarks.md): berth next to the
# upstream kubelet and kube-proxy, which are built into the cache on first
# use (test/tools/build-e2e.sh), as for make conformance AGENT=upstream.
bench: apt
	@e2e_dir="$$(test/tools/build-e2e.sh $(CACHE)/upstream kubelet kube-proxy | tail -n1)" && test -n "$$e2e_dir" && \
	BERTH_E2E_DIR="$$e2e_dir" BERTH_UPSTREAM_DIR=$(UPSTREAM_DIR) BERTH_PLUGINS_DIR=$(PLUGINS_DIR) \
		$(GO) test -run '^$$' -bench . -benchmem -timeout 120m ./...

demo: build
	$(BIN)/testbed demo --nodes $(NODES)

testbed-up: build
	$(BIN)/testbed up --nodes $(NODES)

testbed-down: build
	$(BIN)/testbed down

# conformance runs the upstream Kubernetes e2e suite's node-related
# selection (test/conformance) on a test bed whose node agent is berth, or
# the upstream kubelet and kube-proxy with AGENT=upstream, and fails if a
# selected spec fails. FOCUS= and SKIP= (regexps) narrow the selection.
# e2e.test, ginkgo (and kubelet, kube-proxy) are built into the cache on
# first use (test/tools/build-e2e.sh), the suite's images by
# test/images/conformance.
AGENT             ?= berth
FOCUS             ?=
SKIP              ?=
CONFORMANCE_NODES ?= 1
CONFORMANCE_PROCS ?= 6
CONFORMANCE_IMAGES = $(CACHE)/images/conformance
IMAGES_CMD        ?= $(GO) run ./test/images/conformance/cmd/conformance-images
E2E_TOOLS         = e2e.test ginkgo $(if $(filter upstream,$(AGENT)),kubelet kube-proxy)
BUILD_E2E         = test/tools/build-e2e.sh $(CACHE)/upstream $(E2E_TOOLS)
CONFORMANCE_ARGS  = --agent '$(AGENT)' --nodes $(CONFORMANCE_NODES) --procs $(CONFORMANCE_PROCS) \
	--focus '$(FOCUS)' --skip '$(SKIP)'

e2e-tools:
	$(BUILD_E2E)

conformance: apt conformance-deps build
	@e2e_dir="$$($(BUILD_E2E) | tail -n1)" && test -n "$$e2e_dir" && \
	$(IMAGES_CMD) -out $(CONFORMANCE_IMAGES) \
		-coredns-manifest $(CONFORMANCE_IMAGES)/coredns.yaml >/dev/null && \
	BERTH_UPSTREAM_DIR=$(UPSTREAM_DIR) $(GO) run ./test/conformance/cmd/conformance $(CONFORMANCE_ARGS) \
		--e2e-dir "$$e2e_dir" --images $(CONFORMANCE_IMAGES) --coredns-manifest $(CONFORMANCE_IMAGES)/coredns.yaml

# conformance-list prints the selection (with FOCUS and SKIP) without a bed.
conformance-list:
	@e2e_dir="$$($(BUILD_E2E) | tail -n1)" && test -n "$$e2e_dir" && \
	$(GO) run ./test/conformance/cmd/conformance $(CONFORMANCE_ARGS) --e2e-dir "$$e2e_dir" --list

clean: testbed-down
	rm -rf $(BIN) $(CACHE)/images

# distclean also drops the cached upstream binaries (a rebuild takes a while).
distclean: clean
	rm -rf $(CACHE)
