#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine (run as root): set up, start
# pkg-cacher on port 3142, build the debian-12-x86_64-minimal template from the
# Debian archive through it into ./var/demo/templates, and print where it is.
# Run it again: the second build comes from pkg-cacher's cache.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh

work=${DEMO_DIR:-$PWD/var/demo}
port=${DEMO_PORT:-3142}
template=${DEMO_TEMPLATE:-debian-12-x86_64-minimal}
mkdir -p "$work/log"
work=$(cd "$work" && pwd)

pid=
stop_cacher() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=; true; }
trap stop_cacher EXIT

echo "== pkg-cacher on 127.0.0.1:$port, cache in $work/cache, log in $work/log"
bin/pkg-cacher serve cache_dir="$work/cache" logdir="$work/log" daemon_addr=127.0.0.1 daemon_port="$port" \
	2>>"$work/log/pkg-cacher.log" &
pid=$!
for _ in $(seq 50); do
	curl -s -o /dev/null "http://127.0.0.1:$port/" && break
	kill -0 "$pid" 2>/dev/null || { echo "demo: pkg-cacher did not start; see $work/log/pkg-cacher.log" >&2; exit 1; }
	sleep 0.1
done

echo "== vzpkg create cache $template through pkg-cacher"
misses_before=$(grep -c ' MISS .*\.deb$' "$work/log/access.log" 2>/dev/null || true)
start=$(date +%s)
bin/vzpkg create cache "$template" --cache-dir "$work/templates" --cacher "http://127.0.0.1:$port/"
misses=$(( $(grep -c ' MISS .*\.deb$' "$work/log/access.log" || true) - ${misses_before:-0} ))
echo "demo: built in $(( $(date +%s) - start )) s; $misses packages were fetched from the Debian archive, the rest came from the cache"
echo "demo: template:  $work/templates/$template.tar.gz"
echo "demo: checksum:  $work/templates/$template.tar.gz.sha256"
echo "demo: packages:  $work/templates/$template.manifest"
