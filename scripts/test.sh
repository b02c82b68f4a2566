#!/usr/bin/env bash
# The test command of move: vet, the whole test suite, and a bounded run of every fuzz test.
# Needs only the Go toolchain (modules come from the Go module proxy); ../shared is optional.
set -euo pipefail
cd "$(dirname "$0")/.."
go vet ./...
go test -count=1 -timeout 30m ./...
# Fuzz the parsers of untrusted input (model files, ONNX graphs, watermark keys, inference
# requests) for a bounded number of executions each (about 15, 20, 5 and 15 seconds here). A count, not a duration: with -fuzztime 20s, Go 1.26's fuzz coordinator can
# report "context deadline exceeded" as a failure when a worker is mid-input at the deadline
# (golang/go#75804, fixed in Go 1.27), which failed this script once with no input found.
go test -run '^$' -fuzz '^FuzzReadSafetensors$' -fuzztime 300000x ./internal/modelfile
go test -run '^$' -fuzz '^FuzzImport$' -fuzztime 150000x -fuzzminimizetime 3s ./internal/onnx
go test -run '^$' -fuzz '^FuzzLoadKey$' -fuzztime 30000x ./internal/watermark
go test -run '^$' -fuzz '^FuzzInferRequest$' -fuzztime 100000x ./internal/oip
