# pgherd: every target a new user needs on a fresh Debian 12 machine.
# `make demo` and `make test` install what is missing first (as root).
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
# A count, not a duration: Go 1.26's fuzz coordinator can fail a target
# with a spurious "context deadline exceeded" when a duration-based
# -fuzztime ends on a loaded machine (golang/go#75804, fixed in Go 1.27);
# a count sets no deadline. 5000 inputs: about 10 s for FuzzGRPC, the
# slowest (a gRPC call into a live member each), well under 1 s for others.
FUZZTIME ?= 5000x
# Go minimizes each new interesting input for up to 60 s by default; an
# input on /v3/watch takes the client's 200 ms per run, and one such
# minimization stalled FuzzGatewayJSON for a minute in a CI run.
FUZZMINIMIZE ?= 5s

.PHONY: all deps build test unit e2e fuzz demo bench docs lint clean

all: build

deps:
	@scripts/deps.sh

# Both binaries without cgo: no dynamic loader or libc at each start (~5 ms
# of a command that takes ~80; ~1.3 MB of an idle witness's RSS), static
# binaries; users come from /etc/passwd.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -X github.com/pgherd/pgherd/pkg/cli.version=$(VERSION) -X github.com/pgherd/pgherd/pkg/cli.commit=$(COMMIT)

# The linker writes a binary through mmap, and a binary whose pages came
# into the page cache that way starts slower than the same bytes written by
# cp, install or a package manager: `pgherd --version` 3.2 -> 2.3 ms at
# best, 0.7 ms at the median (300 interleaved runs, same binary, this
# machine). The binaries are rewritten once, as an install would, so that
# what runs from bin/ (make bench included) starts as an installed one.
build:
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o bin/ ./cmd/pgherd ./cmd/pgherd-dcs ./cmd/pgherd-supervise
	@for b in pgherd pgherd-dcs pgherd-supervise; do cp bin/$$b bin/.$$b.new && mv -f bin/.$$b.new bin/$$b || exit 1; done

# The failover suite (tests/ha) runs alone, after the rest: its clusters
# measure time-outs of seconds, which two other suites on 2 cores can skew.
test: deps build lint
	$(GO) test -count=1 -timeout 20m $$($(GO) list ./... | grep -v '/tests/ha$$')
	$(GO) test -count=1 -timeout 20m ./tests/ha
	$(MAKE) fuzz

unit: build
	$(GO) test -count=1 -short ./pkg/...

fuzz:
	@for pkg in $$(grep -rl --include='*_test.go' '^func Fuzz' pkg | xargs -r -n1 dirname | sort -u); do \
	  for f in $$(grep -h '^func Fuzz' $$pkg/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINIMIZE) ./$$pkg || exit 1; \
	  done; \
	done

demo: deps build
	@scripts/demo.sh

bench: deps build
	$(GO) run ./tests/bench -out docs/benchmarks.md
	scripts/bench-supervise.sh

docs:
	rm -rf docs/reference && $(GO) run ./tests/gendocs docs/reference

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

clean:
	rm -rf bin
