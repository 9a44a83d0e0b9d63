# The Mesh: `make run` starts the whole mesh in one process; `make test` runs every test.
# Both install what they need on a fresh Debian machine (redis-server for the Redis tests).

SHELL := /bin/bash
export GOPROXY ?= https://proxy.golang.org
export GOFLAGS ?= -mod=mod
export NEXT_TELEMETRY_DISABLED := 1

BIN := bin
GO_TEST_FLAGS ?= -count=1 -timeout 15m

.PHONY: run build test test-go deps-test vet vuln bench cluster clean

## run: build meshd and start the all-in-one mesh on :4000 (SQLite at ./mesh.sqlite)
run: build
	./$(BIN)/meshd

## build: build meshd and meshbench into ./bin
build:
	go build -o $(BIN)/meshd ./cmd/meshd
	go build -o $(BIN)/meshbench ./cmd/meshbench

## test: install test dependencies if missing, vet, and run every test
test: deps-test vet vuln test-go

test-go:
	go test $(GO_TEST_FLAGS) ./...

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	go vet ./...

## vuln: govulncheck against the offline vulnerability database in internal/tools/vulndb
## (fails when our code calls a vulnerable function)
VULNDB := $(HOME)/.cache/themesh/vulndb
vuln:
	@mkdir -p $(VULNDB) && tar -xzf internal/tools/vulndb/govulndb-v1-*.tar.gz -C $(VULNDB)
	@GOBIN=$(CURDIR)/$(BIN) go install golang.org/x/vuln/cmd/govulncheck@v1.9.0
	./$(BIN)/govulncheck -db file://$(VULNDB)/vulndb ./...

## deps-test: what the tests need that Go does not bring (redis-server from Debian)
deps-test:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server (Debian package)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq redis-server >/dev/null; }
	@redis-server --version

## cluster: the whole cluster as plain processes on loopback (gateways on :4001 and :4002)
cluster: deps-test
	bash deploy/cluster.sh

## bench: the Go benchmarks (send path, fan-out, bus, store, world)
bench:
	go test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf $(BIN)
