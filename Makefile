# rdmakit: `make demo` runs the tour on the embedded default transport (libfabric tcp on
# loopback); `make test` runs every test: host tests (vet, -race, cgocheck2) and, in the
# SoftRoCE lab VM, the tests that need kernel RDMA. Both install missing Debian packages.

GO        ?= go
PKGS      ?= ./...
# Tests that need an RDMA device run inside the lab VM (kernel rxe): whole packages, and the
# verbs-backed tests of fabric and of the capability packages.
LAB_PKGS  ?= ./verbs/ ./examples/...
LAB_RUN_FABRIC ?= Verbs
# Capability packages: their verbs tests (TestVerbs*) in the lab.
LAB_CAP_PKGS ?= ./shmem/ ./pager/ ./raid/
LAB       := $(CURDIR)/ci/lab/vm.sh
TESTFLAGS ?= -count=1 -timeout 20m

export CGO_ENABLED = 1

.PHONY: all deps deps-lab build vet test test-host test-cgocheck test-lab demo bench fuzz clean

all: build

deps:
	@ci/deps.sh build

deps-lab:
	@ci/deps.sh lab

build: deps
	$(GO) build $(PKGS)

vet: deps
	$(GO) vet $(PKGS)

test: vet test-host test-cgocheck test-lab

# Host: everything, race detector on. Tests that need an RDMA device skip here.
test-host: deps
	$(GO) test -race $(TESTFLAGS) $(PKGS)

# cgo pointer rules checked at run time (GOEXPERIMENT=cgocheck2) on the cgo-heavy packages,
# without the race detector (which also lets allocation counts be tested).
test-cgocheck: deps
	GOEXPERIMENT=cgocheck2 $(GO) test $(TESTFLAGS) ./ofi/ ./fabric/... ./bench/ ./internal/... ./shmem/

# Lab: the lab's own VM tests on the host, then test binaries inside a qemu VM with kernel rxe
# (one VM per package); there a missing RDMA device fails the test instead of skipping it.
# The allocation tests run once more without the race detector (its sync.Pool drops what it is
# given at random, so counts under it mean nothing).
LAB_NORACE = RDMAKIT_REQUIRE_RDMA=1 GOEXPERIMENT=cgocheck2 $(GO) test -p 1 $(TESTFLAGS) -exec "$(LAB) --"
LAB_TEST = $(LAB_NORACE) -race
test-lab: deps deps-lab
	RDMAKIT_LAB_VM_TESTS=1 $(GO) test $(TESTFLAGS) ./ci/lab/
	$(LAB_TEST) $(LAB_PKGS)
	$(LAB_TEST) -run '$(LAB_RUN_FABRIC)' ./fabric/ $(LAB_CAP_PKGS)
	$(LAB_NORACE) -run 'VerbsDoAllocs' ./fabric/

demo: deps
	$(GO) run ./cmd/rdmakit demo

bench: deps
	$(GO) run ./cmd/rdmakit bench

# A short coverage-guided run of every fuzz target (the seed corpora run in `make test`).
fuzz: deps
	@for p in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list 'Fuzz.*' $$p 2>/dev/null | grep ^Fuzz); do \
			echo "fuzz $$p $$f"; $(GO) test -run=NONE -fuzz="^$$f$$" -fuzztime=10s $$p || exit 1; \
		done; \
	done

clean:
	$(GO) clean -testcache
	rm -rf .cache/lab
