#!/usr/bin/env bash
# Installs what vzpkg2 needs on Debian 12 (run as root): Debian packages, the Go
# modules, and the two programs into ./bin. Idempotent; sourced by demo.sh and test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian packages. policy-rc.d keeps any server package from starting on its
# default port while it is installed (tests start their own instances).
debs=(ca-certificates curl gnupg dpkg-dev apt-utils xz-utils zstd bzip2 pigz libcap2-bin mmdebstrap debootstrap eatmydata debian-archive-keyring dnf rpm createrepo-c squid chromium lxc)
missing=()
# The man page test renders with groff; the bash completion test needs bash-completion.
debs+=(groff-base bash-completion)
# The pacman script packager (templates/_packagers) and its test: pacman, makepkg, bsdtar.
debs+=(pacman-package-manager makepkg libarchive-tools)
# The packaging tests (internal/packaging): versions from git describe, systemd-analyze.
debs+=(git systemd)
for p in "${debs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
	rm -f /usr/sbin/policy-rc.d
	trap - EXIT
fi
# squid is a test's upstream proxy, started on a free loopback port by the
# test: the packaged service must not hold 3128.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
	systemctl disable --now squid >/dev/null 2>&1 || true
fi

# Go 1.26 or newer: /usr/local/go or PATH; when missing, the official release is
# unpacked into /usr/local/go (Debian 12's golang-go is too old).
export PATH="/usr/local/go/bin:$PATH"
go_ok() { command -v go >/dev/null && case "$(go env GOVERSION)" in go1.2[6-9]* | go1.[3-9]*) true ;; *) false ;; esac; }
if ! go_ok; then
	gover=${GO_VERSION:-1.26.0}
	echo "setup: installing Go $gover into /usr/local/go"
	rm -rf /usr/local/go
	curl -fsSL "https://go.dev/dl/go$gover.linux-$(dpkg --print-architecture).tar.gz" | tar -xz -C /usr/local ||
		{ echo "setup: could not download Go $gover: unpack Go 1.26 or newer into /usr/local/go (https://go.dev/dl/)" >&2; exit 1; }
	go_ok || { echo "setup: $(go env GOVERSION 2>/dev/null) in /usr/local/go is too old; Go 1.26 or newer is needed" >&2; exit 1; }
fi

go mod download
go build -o bin/ ./cmd/...
