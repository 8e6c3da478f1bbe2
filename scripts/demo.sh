#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine (run as root): set up, start
# pkg-cacher on port 3142, and run a real apt-get update + install --download-only
# from the Debian archive through it, twice; the second run is served from the
# cache with pkg-cacher in offline mode, which proves nothing came from upstream.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh

work=${DEMO_DIR:-$PWD/var/demo}
port=${DEMO_PORT:-3142}
pkgs=(hello jq curl)
mkdir -p "$work"
work=$(cd "$work" && pwd)

pid=
stop_cacher() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=; true; }
trap stop_cacher EXIT

start_cacher() {
	bin/pkg-cacher serve cache_dir="$work/cache" logdir="$work/log" daemon_addr=127.0.0.1 daemon_port="$port" "$@" \
		2>>"$work/log/pkg-cacher.log" &
	pid=$!
	for _ in $(seq 50); do
		curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "demo: pkg-cacher did not start; see $work/log/pkg-cacher.log" >&2
	exit 1
}

# A private apt environment (nothing from /etc/apt leaks in) that uses pkg-cacher as its proxy.
apt_client() {
	local d="$work/client-$1"
	rm -rf "$d"
	mkdir -p "$d"/{lists/partial,archives/partial,etc/apt.conf.d,etc/preferences.d,etc/sources.list.d,etc/trusted.gpg.d,log}
	: >"$d/status"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main" >"$d/etc/sources.list"
	cat >"$d/apt.conf" <<CONF
Dir::State "$d"; Dir::State::Lists "$d/lists"; Dir::State::status "$d/status";
Dir::Cache "$d"; Dir::Cache::Archives "$d/archives";
Dir::Etc "$d/etc"; Dir::Etc::SourceList "$d/etc/sources.list"; Dir::Etc::SourceParts "$d/etc/sources.list.d";
Dir::Etc::Parts "$d/etc/apt.conf.d"; Dir::Etc::Preferences "$d/etc/preferences"; Dir::Etc::PreferencesParts "$d/etc/preferences.d";
Dir::Etc::Trusted "$d/etc/trusted.gpg"; Dir::Etc::TrustedParts "$d/etc/trusted.gpg.d"; Dir::Log "$d/log";
APT::Architecture "amd64"; APT::Architectures { "amd64"; }; Debug::NoLocking "true"; APT::Sandbox::User "root";
Acquire::Languages "none"; Acquire::http::Proxy "http://127.0.0.1:$port/";
CONF
	env -u http_proxy -u https_proxy APT_CONFIG="$d/apt.conf" LC_ALL=C apt-get -q update
	env -u http_proxy -u https_proxy APT_CONFIG="$d/apt.conf" LC_ALL=C apt-get -q -y install --download-only "${pkgs[@]}"
	echo "demo: client $1 downloaded $(ls "$d/archives"/*.deb | wc -l) packages into $d/archives"
}

mkdir -p "$work/log"
: >"$work/log/access.log"
echo "== pkg-cacher on 127.0.0.1:$port, cache in $work/cache"
start_cacher
apt_client 1
stop_cacher

echo "== the same again, with pkg-cacher in offline mode (everything must come from the cache)"
start_cacher offline_mode=1
apt_client 2
stop_cacher

if cmp -s <(cd "$work/client-1/archives" && sha256sum *.deb) <(cd "$work/client-2/archives" && sha256sum *.deb); then
	echo "demo: both clients got identical packages"
else
	echo "demo: the two clients' packages differ" >&2
	exit 1
fi
echo "demo: access log $work/log/access.log:"
awk '{print $3}' "$work/log/access.log" | sort | uniq -c
echo "demo: done. Run it yourself with: bin/pkg-cacher serve cache_dir=$work/cache"
