#!/usr/bin/env bash
# Sets up (Debian packages, Go modules) and runs every test of vzpkg2. Run as root:
# the tests drive real apt-get, dpkg and chroot.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh

echo "== gofmt, go vet"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt needed: $unformatted" >&2
	exit 1
fi
go vet ./...

echo "== go test"
go test -count=1 -timeout 40m ./...

echo "== fuzz (every target a few seconds)"
bash scripts/fuzz.sh
