#!/usr/bin/env bash
# The hot-file rows of bench/cache.sh (wrk -t2 -c16, proxy form, on a 19 MB
# and a 10 KB file of random bytes served from pkg-cacher's cache) while an
# expiry pass runs inside the server over the large cache of bench/large.sh,
# against the same rows just before. Each run starts pkg-cacher serve on a
# copy of that cache (hard links: the original stays as it was) with its
# first pass due PASS_AT seconds after the start (default 30; the
# PKG_CACHER_EXPIRE_FIRST environment variable), waits until the checksums
# are learned, runs wrk WRK_SECONDS (default 4) with no pass, then
# WRK_SECONDS from when the pass begins. RUNS runs a file (default 3);
# ROWS names the files (default "big small");
# prints each run, the pass's duration, the medians and their ratio, and
# the median of the runs' own ratios (each pairs two measurements seconds
# apart: steadier than the ratio of medians when the machine drifts
# between runs). Run as root on Debian 12, after bench/large.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh
bash bench/setup.sh >/dev/null
export PATH="/usr/local/go/bin:$PATH"
go build -o bin/ ./cmd/pkg-cacher

runs=${RUNS:-3}
wrk_seconds=${WRK_SECONDS:-4}
pass_at=${PASS_AT:-30}
work=${BENCH_DIR:-var/bench}
large=$work/large-${FILES:-200000}-${SUMS:-500000}
[ -e "$large/done" ] || { echo "bench: $large is missing: run bench/large.sh first" >&2; exit 1; }
run=$(mktemp -d "$PWD/$work/expirehot-XXXXXX")
trap 'cleanup; rm -rf "$run"' EXIT
cp -al "$large/cache" "$run/cache"
if [ -e "$large/cache/index.log" ]; then # the one file appended to in place: a copy of its own
	rm "$run/cache/index.log"
	cp "$large/cache/index.log" "$run/cache/"
fi
mkdir -p "$run/files/pool"
head -c 19000000 /dev/urandom >"$run/files/pool/big.deb"
head -c 10000 /dev/urandom >"$run/files/pool/small.deb"

start_nginx "$run/files"
port=$(free_port)
proxy=http://127.0.0.1:$port
serve() {
	: >"$run/serve.log"
	PKG_CACHER_EXPIRE_FIRST=${pass_at}s bin/pkg-cacher serve cache_dir="$run/cache" logdir="$run/log" \
		daemon_addr=127.0.0.1 daemon_port="$port" allowed_locations="127.0.0.1:$nginx_port" expire_days=30 \
		2>"$run/serve.log" &
	pids[pkg-cacher]=$!
	wait_port "$port" pkg-cacher "$run/serve.log"
}
wrk_rps() { # $1: what
	local out
	out=$(wrk -t2 -c16 -d"${wrk_seconds}s" -s "$run/wrk.lua" "$proxy" 2>&1)
	if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
		echo "bench: $1: $(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr -s ' ')" >&2
		exit 1
	fi
	awk '/^Requests\/sec:/ {print $2}' <<<"$out"
}

echo "| file | run | no pass (req/s) | during a pass (req/s) | during / no pass | pass (s) |"
echo "|---|---|---|---|---|---|"
for f in ${ROWS:-big small}; do
	url=$upstream/pool/$f.deb
	printf 'wrk.path = "%s"\n' "$url" >"$run/wrk.lua"
	q_all="" p_all="" r_all=""
	for i in $(seq "$runs"); do
		t0=$(now)
		serve
		until grep -q 'checksums learned' "$run/serve.log"; do sleep 0.05; done
		curl -fsS -o /dev/null -x "$proxy" "$url"
		curl -fsS -o /dev/null -x "$proxy" "$url"
		q=$(wrk_rps "$f run $i, no pass")
		wait_s=$(awk -v a="$(since "$t0")" -v b="$pass_at" 'BEGIN {print b - a}')
		if awk -v w="$wait_s" 'BEGIN {exit !(w < 0)}'; then
			echo "bench: the pass began before the run without one ended: raise PASS_AT" >&2
			exit 1
		fi
		sleep "$wait_s"
		p=$(wrk_rps "$f run $i, during a pass")
		until grep -q 'expiry pass' "$run/serve.log"; do sleep 0.1; done
		secs=$(grep 'expiry pass' "$run/serve.log" | sed -n 's/.*seconds=\([0-9.]*\).*/\1/p')
		stop pkg-cacher
		printf '| %s | %s | %s | %s | %.2f | %.1f |\n' "$f" "$i" "$q" "$p" "$(awk -v a="$p" -v b="$q" 'BEGIN {print a / b}')" "$secs"
		q_all+="$q " p_all+="$p " r_all+="$(awk -v a="$p" -v b="$q" 'BEGIN {print a / b}') "
	done
	qm=$(echo "$q_all" | median) pm=$(echo "$p_all" | median)
	echo "| $f | median | $qm | $pm | $(awk -v a="$pm" -v b="$qm" 'BEGIN {printf "%.2f", a / b}') | |"
	echo "| $f | median of the runs' ratios | | | $(echo "$r_all" | median | xargs printf '%.2f') | |"
done
echo
echo "$(machine); load average $(cut -d' ' -f1-3 /proc/loadavg)"
