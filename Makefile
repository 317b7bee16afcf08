# xkeep's entry points. `make demo` and `make test` are the two a newcomer
# runs; both install what they need (test/deps.sh) and re-run as root.

GO      ?= go
SUDO    := $(if $(filter 0,$(shell id -u)),,sudo -E env PATH=$(PATH))
BIN     := bin/xkeep
PKGS    := ./...
# -race needs cgo; Debian's gcc is among the deps.
RACE    ?= -race
TIMEOUT ?= 30m

.PHONY: all build generate check-generate test test-go test-vm fuzz bench demo lint deps clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/xkeep

deps:
	@./test/deps.sh

# Rebuilds the bpf2go output (.go and .o, committed) from bpf/*.c.
generate: deps
	$(GO) generate ./dataplane/...

# Fails when the committed generated files differ from what bpf/ produces.
check-generate: generate
	@git diff --exit-code --stat -- dataplane/ || \
		{ echo "generated BPF files are stale: run 'make generate' and commit"; exit 1; }

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# The whole suite, as CI runs it: generated files, lint, every Go test as
# root, short fuzz runs, and the tests inside the 6.1 VM.
test: deps check-generate lint test-go fuzz test-vm

test-go: deps
	$(SUDO) $(GO) test $(RACE) -timeout $(TIMEOUT) $(PKGS)

FUZZTIME ?= 20s
fuzz: deps
	./test/fuzz.sh $(FUZZTIME)

test-vm: deps
	$(SUDO) $(GO) run ./test/vm

bench: deps
	$(SUDO) $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m $(PKGS)
	$(SUDO) $(GO) run ./test/vm -bench

# The seed's failover story in network namespaces (test/lab), told as a
# timeline, on the binary `build` just made; exits non-zero if a step
# does not happen as it should.
demo: deps build
	$(SUDO) $(GO) run ./test/lab -xkeep $(BIN)

clean:
	rm -rf bin
