#!/usr/bin/env bash
# Template build benchmark (run as root): vzpkg create cache debian-12-x86_64-minimal
# against mmdebstrap writing a tar.gz, all through one warm pkg-cacher, runs
# alternating. Peers:
#   mmdebstrap-minbase   mmdebstrap --variant=minbase bookworm out.tar.gz (the tool people use)
#   mmdebstrap-same-set  the same, with the template's packages (--include) and merged /usr
#                        laid out the same way: the template's packages, but not slim
#   mmdebstrap-same-set-slim  the same set slim too: the template's path_exclude and
#                        path_include as --dpkgopt, mmdebstrap's own way; equal contents
#                        but for the dummies and fixups
# Prints a Markdown table of median wall times and tarball sizes, with ratios
# to vzpkg. RUNS=N sets the runs per tool (default 3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh >/dev/null

runs=${RUNS:-3}
template=debian-12-x86_64-minimal
work=${BENCH_DIR:-$PWD/var/bench}
mkdir -p "$work/log" "$work/out"
export SOURCE_DATE_EPOCH=1700000000

# pkg-cacher on a free loopback port (daemon_port=0); its start line names the address.
: >"$work/log/pkg-cacher.log"
bin/pkg-cacher serve cache_dir="$work/cache" logdir="$work/log" daemon_addr=127.0.0.1 daemon_port=0 2>>"$work/log/pkg-cacher.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work/out"' EXIT
addr=
for _ in $(seq 100); do
	addr=$(sed -n '/pkg-cacher serving/s/.* addr=\([^ ]*\).*/\1/p' "$work/log/pkg-cacher.log")
	[ -n "$addr" ] && break
	sleep 0.1
done
[ -n "$addr" ] || { echo "bench: pkg-cacher did not start; see $work/log/pkg-cacher.log" >&2; exit 1; }
cacher=http://$addr/

include=$(bin/vzpkg show-config "$template" | awk '/^packages:/{p=1; next} /^[a-z]/{p=0} p && /^  - /{print $2}' | paste -sd, -)
mirror="deb http://deb.debian.org/debian bookworm main"
# The template's dpkg path filters, as dpkg configuration lines for --dpkgopt.
bin/vzpkg show-config "$template" | awk '/^path_(exclude|include):/{p=substr($1, 6, 7); next} /^[a-z]/{p=""} p && /^  - /{print "path-" p "=" $2}' >"$work/slim.dpkgopt"
[ -s "$work/slim.dpkgopt" ] || { echo "bench: $template has no path filters" >&2; exit 1; }

vzpkg_run() { bin/vzpkg create cache "$template" --cache-dir "$work/out" --cacher "$cacher" -q >/dev/null; echo "$work/out/$template.tar.gz"; }
mm_run() { # $1: extra mmdebstrap arguments
	rm -f "$work/out/mm.tar.gz"
	mmdebstrap -q --variant=minbase --aptopt="Acquire::http::Proxy \"$cacher\"" $1 bookworm "$work/out/mm.tar.gz" "$mirror"
	echo "$work/out/mm.tar.gz"
}

declare -A times sizes
measure() { # $1: name, rest: command printing the tarball path
	local name=$1 start end out
	shift
	start=$(date +%s.%N)
	out=$("$@")
	end=$(date +%s.%N)
	times[$name]+="$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}') "
	sizes[$name]+="$(stat -c %s "$out") "
}

echo "warming the cache..." >&2
vzpkg_run >/dev/null
mm_run "--include=$include --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr" >/dev/null
for i in $(seq "$runs"); do
	echo "run $i/$runs" >&2
	measure vzpkg vzpkg_run
	measure mmdebstrap-minbase mm_run ""
	measure mmdebstrap-same-set mm_run "--include=$include --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr"
	measure mmdebstrap-same-set-slim mm_run "--include=$include --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr --dpkgopt=$work/slim.dpkgopt"
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
vt=$(echo "${times[vzpkg]}" | median)
vs=$(echo "${sizes[vzpkg]}" | median)
echo
echo "Template build through a warm pkg-cacher, $runs runs each, medians ($(nproc) CPUs, $(date -u +%F))"
echo
echo "| tool | wall time (s) | vzpkg / tool | tarball (MB) | vzpkg / tool |"
echo "|---|---|---|---|---|"
for name in vzpkg mmdebstrap-minbase mmdebstrap-same-set mmdebstrap-same-set-slim; do
	t=$(echo "${times[$name]}" | median)
	s=$(echo "${sizes[$name]}" | median)
	awk -v n="$name" -v t="$t" -v s="$s" -v vt="$vt" -v vs="$vs" 'BEGIN {printf "| %s | %.1f | %.2f | %.1f | %.2f |\n", n, t, vt / t, s / 1e6, vs / s}'
done
