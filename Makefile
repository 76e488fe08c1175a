# nbpool — make run starts the daemon, make test passes its tests.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN := bin/nbpool
CONFIG ?=

.PHONY: build run test test-go vet images image-fakenb image-jupyter engine deps bench bench-quick clean image image-test test-image

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

# make run: serve on 127.0.0.1:8000 with the default jupyter binding; uses the
# local Debian-built Jupyter image when the configured one cannot be pulled.
run: build engine
	./contrib/run.sh $(CONFIG)

# make image: nbpool's own image from the Dockerfile (IMAGE=nbpool:latest).
# Without a registry it builds in a local Go image made offline from the
# Jupyter test image, the host's Go and its module cache (see the script).
# make test-image: build it as TEST_IMAGE, then run it as the README does
# (make test does too).
IMAGE ?= nbpool:latest
TEST_IMAGE ?= nbpool-test/nbpool:latest
image: engine
	./contrib/build-image.sh $(IMAGE)

image-test: engine
	./contrib/build-image.sh $(TEST_IMAGE)

test-image: image-test
	NBPOOL_TEST_IMAGE=$(TEST_IMAGE) $(GO) test -count=1 -run TestDockerImageServes -v ./daemon

# make test: everything CI runs. Fails when no Docker engine answers.
test: engine deps images image-test vet test-go

test-go:
	NBPOOL_TEST_IMAGE=$(TEST_IMAGE) $(GO) test -race -count=1 -timeout 40m ./... ./testdata/images/...

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./... ./testdata/images/...

engine:
	@docker info >/dev/null 2>&1 || { echo "no Docker engine answers (check dockerd and DOCKER_HOST)"; exit 1; }

# Debian packages the tests need (a real browser, wrk, nginx, CHP).
deps:
	@./contrib/deps.sh

images: image-fakenb image-jupyter

image-fakenb:
	./testdata/images/fakenb/build.sh

image-jupyter:
	./testdata/images/jupyter/build.sh

# make bench: the benchmark harness, every scenario side by side with its
# baseline (bench/README.md); writes bench/results/latest.{md,json}. Run it on
# an otherwise idle machine. make bench-quick: the same, smaller (< 2 min).
bench: build engine deps images
	$(GO) build -o bin/nbpool-bench ./bench
	./bin/nbpool-bench -nbpool $(BIN)

bench-quick: build engine deps images
	$(GO) build -o bin/nbpool-bench ./bench
	./bin/nbpool-bench -nbpool $(BIN) -quick

clean:
	rm -rf bin
