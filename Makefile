# Benchmarks; not part of the tests (scripts/test.sh). Run as root on Debian 12.
# RUNS=N sets the runs per tool (default 3).
.PHONY: bench bench-dnf bench-template build packages install

GO ?= go
PREFIX ?= /usr/local
DESTDIR ?=
# The package version; empty: from git describe.
VERSION ?=

# The two programs, into build/bin: static (they run on any glibc), the same
# bytes from the same commit and Go.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o build/bin/ ./cmd/...

# .deb and .rpm of vzpkg2 into dist/ (internal/packaging lists their files).
packages: build
	$(GO) run ./internal/packaging/mkpkg -bin build/bin -out dist -version "$(VERSION)" deb rpm

# The same files as the packages, under PREFIX (configuration in /etc, kept
# when it exists); no user or service is created (docs/install.md).
install: build
	$(GO) run ./internal/packaging/mkpkg -bin build/bin -prefix "$(PREFIX)" -destdir "$(DESTDIR)" install

# pkg-cacher against apt-cacher-ng, squid and nginx with apt clients, then
# against squid and nginx with dnf clients; each appends to docs/benchmarks.md.
bench:
	bash bench/cache.sh
	bash bench/dnf.sh

# The dnf scenario alone: a local RPM repository, pkg-cacher against squid and nginx.
bench-dnf:
	bash bench/dnf.sh

# vzpkg create cache against mmdebstrap through a warm pkg-cacher.
bench-template:
	bash bench/template.sh
