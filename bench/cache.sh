#!/usr/bin/env bash
# Package cache benchmark (run as root; `make bench`): pkg-cacher against
# apt-cacher-ng, squid configured as a package cache, and nginx serving the
# files directly, all on loopback, runs alternating. Every server gets its own
# free 127.0.0.1 port and its own directory under $BENCH_DIR/run (default
# var/bench/run); all are stopped at exit.
#
# Upstream: nginx serving the mirror bench/mirror.sh builds (~500 real Debian 12
# packages, unsigned Release: the clients' sources say [trusted=yes]); its
# access log ($body_bytes_sent) counts the upstream bytes.
# Client: apt-get with an isolated APT_CONFIG (own sources, lists, status,
# archives) using the cache as its HTTP proxy: apt-get update, then apt-get
# download of every package in the mirror (apt checks each file's SHA256).
#
# Measures, per cache and run:
#   1 cold, one client      a fresh cache, one client (wall time)
#   2 warm, one client      the same client again, cache now holding everything
#   3 cold, 8 clients       a fresh cache, eight clients at once (wall time of all)
#   4 upstream bytes for 3  summed from nginx's log, and as a multiple of one client's data
#   5 peak RSS during 3     VmHWM of the cache process after 3 (squid: plus its children)
#   6 hot files             wrk, 16 connections, $WRK_SECONDS s each, on gcc-12 (~19 MB) and
#                           python3-aiofiles (~10 KB) through the warm cache, in proxy form
# and the same with no cache ("direct": the clients straight to nginx, wrk on
# nginx). Prints a Markdown table of medians with pkg-cacher's ratios and
# appends it, with the machine description, to docs/benchmarks.md.
# RUNS=N sets the runs (default 3); WRK_SECONDS the wrk duration (default 5);
# BENCH_DOCS the file the section is appended to (default docs/benchmarks.md).
# Servers, tables and the machine line: bench/lib.sh, shared with bench/dnf.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh
load_start=$(cut -d' ' -f1 /proc/loadavg) # other work on the machine competes for the CPUs
source scripts/setup.sh >/dev/null
bash bench/setup.sh
bash bench/mirror.sh

runs=${RUNS:-3}
wrk_seconds=${WRK_SECONDS:-5}
work=${BENCH_DIR:-$PWD/var/bench}
run=$work/run
rm -rf "$run"
mkdir -p "$run"
peers=(pkg-cacher apt-cacher-ng squid)
trap cleanup EXIT

# --- upstream: nginx -------------------------------------------------------
start_nginx "$work/mirror"

packages=$work/mirror/debian/dists/bookworm/main/binary-amd64/Packages
npkgs=$(awk '/^Package:/ {n++} END {print n}' "$packages")
awk '/^Package:/ {print $2}' "$packages" | sort -u >"$run/names.txt"
big=$(awk '/^Package: gcc-12$/ {p=1} p && /^Filename:/ {print $2; exit}' "$packages")
small=$(awk '/^Package: python3-aiofiles$/ {p=1} p && /^Filename:/ {print $2; exit}' "$packages")
big_size=$(stat -c %s "$work/mirror/debian/$big")
small_size=$(stat -c %s "$work/mirror/debian/$small")

# --- the caches ------------------------------------------------------------
# Started by start_cache (bench/lib.sh); squid as a package cache: .deb fresh
# for 90 days, Release and Packages always revalidated.
declare -A ports
for c in "${peers[@]}"; do ports[$c]=$(free_port); done
squid_refresh='refresh_pattern \.(deb|udeb)$ 129600 100% 129600
refresh_pattern /(InRelease|Release|Release\.gpg|Packages(\.gz|\.xz)?)$ 0 0% 0'

# Peak resident set of a cache since its start, in bytes: VmHWM of the process
# and of its children (squid's helpers).
peak_rss() { # $1: pid
	local kb=0 p
	for p in "$1" $(pgrep -P "$1" || true); do
		kb=$((kb + $(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
	done
	echo $((kb * 1024))
}

# --- apt clients -----------------------------------------------------------
# client DIR PROXY: update and download every package; PROXY empty is direct.
client() {
	local d=$1 proxy=${2:-DIRECT}
	rm -rf "$d"
	mkdir -p "$d/lists/partial" "$d/archives/partial" "$d/debs"
	: >"$d/status"
	echo "deb [trusted=yes] $upstream/debian bookworm main" >"$d/sources.list"
	cat >"$d/apt.conf" <<CONF
Dir::Etc::sourcelist "$d/sources.list";
Dir::Etc::sourceparts "/nonexistent";
Dir::State::lists "$d/lists";
Dir::State::status "$d/status";
Dir::Cache "$d";
Dir::Cache::archives "$d/archives";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Architecture "amd64";
APT::Architectures "amd64";
Acquire::Languages "none";
Acquire::PDiffs "false";
Acquire::http::Proxy "$proxy";
APT::Sandbox::User "root";
CONF
	local t0
	t0=$(now)
	if ! APT_CONFIG=$d/apt.conf apt-get -q update >"$d/update.log" 2>&1 ||
		grep -q '^[EW]:' "$d/update.log"; then
		echo "apt-get update failed: $d/update.log" >&2
		return 1
	fi
	echo "update $(since "$t0") s" >"$d/times.txt"
	t0=$(now)
	if ! (cd "$d/debs" && APT_CONFIG=$d/apt.conf xargs apt-get -q download <"$run/names.txt" >"$d/download.log" 2>&1); then
		echo "apt-get download failed: $d/download.log" >&2
		return 1
	fi
	echo "download $(since "$t0") s" >>"$d/times.txt"
	local got
	got=$(find "$d/debs" -name '*.deb' | wc -l)
	[ "$got" -eq "$npkgs" ] || { echo "$d: $got packages, want $npkgs" >&2; return 1; }
	rm -rf "$d/debs" "$d/lists" # keep the logs, not 176 MB a client
}

single() { # $1: name, $2: metric, $3: proxy
	local t
	t=$(now)
	if client "$run/clients/$i-$1-$2" "$3"; then record "$1" "$2" "$(since "$t")"; else fail "$1" "$2"; fi
}
fleet() { # $1: name, $2: proxy
	local t k ok=1 cpids=()
	t=$(now)
	for k in $(seq 8); do
		client "$run/clients/$i-$1-fleet-$k" "$2" &
		cpids+=($!)
	done
	for k in "${cpids[@]}"; do wait "$k" || ok=0; done
	if [ $ok = 1 ]; then record "$1" fleet "$(since "$t")"; else fail "$1" "fleet: a client failed"; fi
}
hot() { # $1: name, $2: proxy URL or empty (direct); wrk in proxy form through a cache
	local f label size out rps url script
	for label in big small; do
		if [ $label = big ]; then f=$big size=$big_size; else f=$small size=$small_size; fi
		url=$upstream/debian/$f
		script=$run/wrk-$1-$label.lua
		if [ -n "$2" ]; then
			curl -fsS -o /dev/null -x "$2" "$url" || fail "$1" "hot $label: warming fetch failed"
			printf 'wrk.path = "%s"\n' "$url" >"$script"
			out=$(wrk -t2 -c16 -d"${wrk_seconds}s" -s "$script" "$2" 2>&1)
		else
			out=$(wrk -t2 -c16 -d"${wrk_seconds}s" "$url" 2>&1)
		fi
		echo "$out" >"$run/wrk-$1-$label.txt"
		if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
			fail "$1" "hot $label: wrk: $(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr -s ' ' | paste -sd';' -)"
		fi
		rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
		record "$1" "hot-$label-rps" "$rps"
		record "$1" "hot-$label-mbs" "$(awk -v r="$rps" -v s="$size" 'BEGIN {print r * s / 1e6}')"
	done
}

for i in $(seq "$runs"); do
	echo "run $i/$runs: direct" >&2
	mark=$(log_mark)
	single direct cold ""
	record direct data "$(bytes_since "$mark")"
	mark=$(log_mark)
	fleet direct ""
	record direct upstream "$(bytes_since "$mark")"
	hot direct ""
	for c in "${peers[@]}"; do
		echo "run $i/$runs: $c" >&2
		proxy=http://127.0.0.1:${ports[$c]}/
		start_cache "$c"
		single "$c" cold "$proxy"
		single "$c" warm "$proxy"
		start_cache "$c"
		mark=$(log_mark)
		fleet "$c" "$proxy"
		record "$c" upstream "$(bytes_since "$mark")"
		record "$c" rss "$(peak_rss "${pids[$c]}")"
		hot "$c" "$proxy"
		stop "$c"
	done
done
cleanup

# --- table -----------------------------------------------------------------
data=$(m direct data)
table() {
	echo "| measure | direct (nginx) | pkg-cacher | apt-cacher-ng | squid | pkg-cacher / direct | pkg-cacher / apt-cacher-ng | pkg-cacher / squid | target |"
	echo "|---|---|---|---|---|---|---|---|---|"
	row "1 cold, one client (s)" cold 1 %.2f "≤ 1.2× direct"
	res["direct warm"]=${res["direct cold"]:-}
	row "2 warm, one client (s)" warm 1 %.2f "≤ 1.0× direct"
	row "3 cold, 8 clients (s)" fleet 1 %.2f "≤ 1.0× squid"
	row "4 upstream bytes for 3 (MB)" upstream 1e6 %.1f "—"
	row "4 upstream bytes for 3 (× one client's data)" upstream "$data" %.2f "pkg-cacher 1.00"
	row "5 peak RSS during 3 (MB)" rss 1048576 %.1f "pkg-cacher ≤ 32"
	row "6 hot $((big_size / 1000000)) MB file (requests/s)" hot-big-rps 1 %.1f "≥ 0.95× nginx"
	row "6 hot $((big_size / 1000000)) MB file (MB/s)" hot-big-mbs 1 %.0f "≥ 0.95× nginx"
	row "6 hot $((small_size / 1000)) KB file (requests/s)" hot-small-rps 1 %.0f "≥ 0.8× nginx"
	row "6 hot $((small_size / 1000)) KB file (MB/s)" hot-small-mbs 1 %.1f "≥ 0.8× nginx"
}

load_end=$(cut -d' ' -f1 /proc/loadavg)
report=$run/report.md
{
	echo
	echo "### Run of $(date -u '+%F %H:%M') UTC, RUNS=$runs"
	echo
	echo "$(machine); pkg-cacher $(git describe --always --dirty) (bin/pkg-cacher built from the working tree)," \
		"apt-cacher-ng $(ver apt-cacher-ng), squid $(ver squid), nginx-light $(ver nginx-light), wrk $(ver wrk)." \
		"Mirror: $npkgs packages, one client's data $(awk -v b="$data" 'BEGIN {printf "%.1f", b / 1e6}') MB;" \
		"wrk -t2 -c16 -d${wrk_seconds}s. Load average (1 min) $load_start at the start, $load_end at the end." \
		"Medians of $runs alternating run(s); ratios are pkg-cacher's value divided by the other's."
	echo
	table
	if [ ${#errors[@]} -gt 0 ]; then
		echo
		echo "Errors (their measurements are left out):"
		echo
		for e in "${errors[@]}"; do echo "- $e"; done
	fi
} >"$report"
cat "$report"
cat "$report" >>"${BENCH_DOCS:-docs/benchmarks.md}"
echo >&2
echo "bench: appended to ${BENCH_DOCS:-docs/benchmarks.md}; every value in $run/raw.txt, logs in $run/logs, clients (times.txt: update and download) in $run/clients" >&2
