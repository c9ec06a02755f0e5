# kubeyard: `make run` starts the engine, `make test` runs every test.
KUBE_VERSION := v1.37.2
VERSION_PKG  := k8s.io/component-base/version
LDFLAGS := -s -w \
  -X $(VERSION_PKG).gitVersion=$(KUBE_VERSION) \
  -X $(VERSION_PKG).gitMajor=1 \
  -X $(VERSION_PKG).gitMinor=37 \
  -X $(VERSION_PKG).gitTreeState=clean \
  -X $(VERSION_PKG).buildDate=2026-01-01T00:00:00Z

BIN  := bin/kubeyard
# The process that watches over each running container: small, apart from
# the engine, which finds it beside its own binary.
SHIM := bin/kubeyard-shim

# The images kubeyard carries (internal/images/builtin): the hello-app
# server, built here at both versions, netd, CoreDNS (a module of its own),
# and Debian's static busybox.
BUILTIN       := internal/images/builtin
BUILTIN_FILES := $(BUILTIN)/busybox $(BUILTIN)/applets $(BUILTIN)/hello-app-1.0 $(BUILTIN)/hello-app-2.0 $(BUILTIN)/netd $(BUILTIN)/coredns

.PHONY: build run test unit e2e bench clean browser $(BIN) $(SHIM)

build: $(BIN) $(SHIM)

# Go's build cache makes this quick after the first time (~10 minutes on 2
# cores: it compiles kube-apiserver, kube-controller-manager, kube-scheduler
# and etcd).
$(BIN): $(BUILTIN_FILES)
	go build -tags builtin_images -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/kubeyard

$(SHIM):
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o $(SHIM) ./cmd/kubeyard-shim

$(BUILTIN)/hello-app-%: images/hello-app/main.go
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$*.0" -o $@ ./images/hello-app

$(BUILTIN)/netd: images/netd/main.go internal/netd/netd.go
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o $@ ./images/netd

$(BUILTIN)/coredns: images/coredns/main.go images/coredns/go.mod images/coredns/go.sum
	cd images/coredns && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o $(abspath $@) .

# Debian's packages nodes need: busybox-static for the built-in images, runc
# to run containers, nftables for kube-proxy's nft (installed here when
# missing; apt-get needs root).
$(BUILTIN)/busybox:
	@test -x /bin/busybox -a -x "$$(command -v runc)" -a -x "$$(command -v nft)" || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc busybox-static nftables; }
	cp /bin/busybox $@

$(BUILTIN)/applets: $(BUILTIN)/busybox
	$(BUILTIN)/busybox --list > $@

run: $(BIN) $(SHIM)
	$(BIN) serve $(ARGS)

# Debian's Chromium, which the console's end-to-end tests drive headless
# (installed here when missing; apt-get needs root).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# Unit tests, then the end-to-end tests that drive the built binary with the
# real gcloud and kubectl.
test: unit e2e

# vet compiles every package, benchmarks and e2e tests among them, which
# no other target builds.
unit: $(BUILTIN_FILES)
	go vet ./...
	go test ./internal/...

e2e: $(BIN) $(SHIM) browser
	KUBEYARD_BINARY=$(abspath $(BIN)) go test -count=1 -timeout 40m -v ./e2e/...

bench: $(BIN) $(SHIM)
	KUBEYARD_BINARY=$(abspath $(BIN)) go test -count=1 -timeout 30m -run '^$$' -bench . -benchtime 1x ./bench/...

clean:
	rm -rf bin $(BUILTIN_FILES)
