#!/usr/bin/env bash
# The test command of move: vet, the whole test suite, and a bounded run of every fuzz test.
# Needs only the Go toolchain (modules come from the Go module proxy); ../shared is optional.
set -euo pipefail
cd "$(dirname "$0")/.."
go vet ./...
go test -count=1 ./...
# Fuzz the parsers of untrusted files for a bounded time each.
go test -run '^$' -fuzz '^FuzzReadSafetensors$' -fuzztime 15s ./internal/modelfile
go test -run '^$' -fuzz '^FuzzImport$' -fuzztime 20s -fuzzminimizetime 3s ./internal/onnx
