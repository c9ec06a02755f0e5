# kubeyard: `make run` starts the engine, `make test` runs every test.
KUBE_VERSION := v1.37.2
VERSION_PKG  := k8s.io/component-base/version
LDFLAGS := -s -w \
  -X $(VERSION_PKG).gitVersion=$(KUBE_VERSION) \
  -X $(VERSION_PKG).gitMajor=1 \
  -X $(VERSION_PKG).gitMinor=37 \
  -X $(VERSION_PKG).gitTreeState=clean \
  -X $(VERSION_PKG).buildDate=2026-01-01T00:00:00Z

BIN := bin/kubeyard

.PHONY: build run test unit e2e bench clean $(BIN)

build: $(BIN)

# Go's build cache makes this quick after the first time (~10 minutes on 2
# cores: it compiles kube-apiserver, kube-controller-manager, kube-scheduler
# and etcd).
$(BIN):
	go build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/kubeyard

run: $(BIN)
	$(BIN) serve $(ARGS)

# Unit tests, then the end-to-end tests that drive the built binary with the
# real gcloud and kubectl.
test: unit e2e

unit:
	go test ./internal/...

e2e: $(BIN)
	KUBEYARD_BINARY=$(abspath $(BIN)) go test -count=1 -timeout 40m -v ./e2e/...

bench: $(BIN)
	KUBEYARD_BINARY=$(abspath $(BIN)) go test -count=1 -timeout 30m -run '^$$' -bench . -benchtime 1x ./bench/...

clean:
	rm -rf bin
