# nibble: two commands on a fresh machine.
#   make run   – the main job on the embedded default model
#   make test  – every native and browser test
# Both install what they need first (tools/browser/install.sh: apt, npm ci, go install), and
# installs are skipped when already done.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export PATH := $(CURDIR)/tools/browser/bin:$(CURDIR)/.cache/bin:/usr/local/go/bin:$(PATH)

.PHONY: run test deps test-go test-js bench build serve vet

deps:
	@bash tools/browser/install.sh

run: deps
	go run ./tools/quanttest report

test: deps vet test-go test-js

vet:
	go vet ./...
	GOOS=js GOARCH=wasm go vet ./...

test-go:
	go test ./...

test-js:
	bash tools/browser/test-js.sh

bench: deps
	go test -run '^$$' -bench . ./wasm/quant/
