# Molar: two commands do everything.
#   make run   builds and starts Molar with an embedded PostgreSQL, a filesystem
#              object store and demo data.
#   make test  installs what the tests need and runs every test.

SHELL     := /bin/bash
GO        ?= go
BIN       := bin/molar
TOOLS_BIN ?= $(HOME)/.cache/molar/bin
export MOLAR_TOOLS_BIN := $(TOOLS_BIN)
export MOLAR_VERSITYGW ?= $(TOOLS_BIN)/versitygw
export TCP_NODELAY := 1

# Demo settings for `make run` only (tests set their own); override on the
# command line or in the environment.
run: export MOLAR_DEMO ?= true
run: export MOLAR_DICOM_ACCEPT_UNKNOWN ?= true
run: export MOLAR_PORTAL_XRAYS ?= true
run: export MOLAR_LOG_FORMAT ?= text

TEST_TIMEOUT ?= 20m
TEST_FLAGS   ?=

.PHONY: run build test lint bench deps clean

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/molar

run: build
	@bash .ci/install-deps run
	./$(BIN) serve

test:
	@bash .ci/install-deps test
	$(GO) vet ./...
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -p 2 $(TEST_FLAGS) ./... 2>&1 | tee test-output.log; exit $${PIPESTATUS[0]}

lint:
	@bash .ci/install-deps lint
	$(GO) vet ./...
	$(TOOLS_BIN)/staticcheck ./...

bench:
	@bash .ci/install-deps test
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m ./...

clean:
	rm -rf bin test-output.log
