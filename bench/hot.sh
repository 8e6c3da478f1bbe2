#!/usr/bin/env bash
# The hot-file rows of bench/cache.sh, alternating: nginx serving a file
# straight, then pkg-cacher serving the same file from its cache, RUNS times
# each (default 5), with wrk -t2 -c16 for WRK_SECONDS (default 5) a run, on a
# 19 MB and a 10 KB file of random bytes. Alternating runs put both servers
# under the same background load; the medians and their ratio are printed.
# Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh
bash bench/setup.sh >/dev/null
export PATH="/usr/local/go/bin:$PATH"
go build -o bin/ ./cmd/pkg-cacher

runs=${RUNS:-5}
wrk_seconds=${WRK_SECONDS:-5}
work=${BENCH_DIR:-var/bench}
mkdir -p "$work"
run=$(mktemp -d "$PWD/$work/hot-XXXXXX")
trap 'cleanup; rm -rf "$run"' EXIT
mkdir -p "$run/files/pool"
head -c 19000000 /dev/urandom >"$run/files/pool/big.deb"
head -c 10000 /dev/urandom >"$run/files/pool/small.deb"

start_nginx "$run/files"
declare -A ports=([pkg-cacher]=$(free_port))
start_cache pkg-cacher
proxy=http://127.0.0.1:${ports[pkg-cacher]}

rps() { awk '/^Requests\/sec:/ {print $2}' <<<"$1"; }
check() { # $1: wrk output, $2: what
	if grep -qE 'Non-2xx|Socket errors' <<<"$1"; then
		echo "bench: $2: $(grep -E 'Non-2xx|Socket errors' <<<"$1" | tr -s ' ')" >&2
		exit 1
	fi
}
echo "| file | run | nginx (req/s) | pkg-cacher (req/s) | pkg-cacher / nginx |"
echo "|---|---|---|---|---|"
for f in big small; do
	url=$upstream/pool/$f.deb
	curl -fsS -o /dev/null -x "$proxy" "$url"
	curl -fsS -o /dev/null -x "$proxy" "$url"
	printf 'wrk.path = "%s"\n' "$url" >"$run/wrk.lua"
	n_all="" p_all=""
	for i in $(seq "$runs"); do
		out=$(wrk -t2 -c16 -d"${wrk_seconds}s" "$url" 2>&1)
		check "$out" "nginx $f run $i"
		n=$(rps "$out")
		out=$(wrk -t2 -c16 -d"${wrk_seconds}s" -s "$run/wrk.lua" "$proxy" 2>&1)
		check "$out" "pkg-cacher $f run $i"
		p=$(rps "$out")
		echo "| $f | $i | $n | $p | $(awk -v a="$p" -v b="$n" 'BEGIN {printf "%.2f", a / b}') |"
		n_all+="$n " p_all+="$p "
	done
	nm=$(echo "$n_all" | median) pm=$(echo "$p_all" | median)
	echo "| $f | median | $nm | $pm | $(awk -v a="$pm" -v b="$nm" 'BEGIN {printf "%.2f", a / b}') |"
done
