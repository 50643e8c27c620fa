# mlxgo build and test entry points. CGO is off everywhere: one static binary.
export CGO_ENABLED := 0
GO ?= go
BIN ?= bin/mlxgo

.PHONY: build run test bench golden lint cross clean

build:
	$(GO) build -trimpath -o $(BIN) .

# The main job: build, then generate offline with the tiny llama checkpoint
# in testdata (random test weights: the text is gibberish, the pipeline real).
run: build
	./$(BIN) generate --model testdata/models/llama-f32 --ignore-chat-template --prompt "Once upon a time, " --max-tokens 32

test:
	$(GO) test ./...

# Benchmarks: see BENCHMARKS.md for the latest figures and the machine.
bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./...

# Regenerates golden files; only this target rewrites them.
golden:
	$(GO) test ./... -run Golden -update

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

cross:
	GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null .
	GOOS=linux GOARCH=arm64 $(GO) build -o /dev/null .
	GOOS=linux GOARCH=amd64 $(GO) build -o /dev/null .

clean:
	rm -rf bin
