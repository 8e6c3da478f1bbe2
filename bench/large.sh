#!/usr/bin/env bash
# A large cache: FILES package files (default 200,000) and a Packages index
# listing SUMS checksums (default 500,000), made once by bench/largecache in
# var/bench/large. Measures, with the page cache dropped first: the time
# from starting pkg-cacher serve to its first hit, the time until the
# checksums are learned, its resident memory then (VmRSS, and the peak
# VmHWM), the first hit after a kill -9, and one expiry pass (pkg-cacher
# expire --dry-run), with the page cache dropped and warm, and once more
# as after a crash (index.pack gone: the index entries are read one file
# each). Prints a Markdown table. Run as root on Debian 12; the first run
# takes a few minutes to fill the cache.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh
export PATH="/usr/local/go/bin:$PATH"
go build -o bin/ ./cmd/pkg-cacher

files=${FILES:-200000}
sums=${SUMS:-500000}
work=${BENCH_DIR:-var/bench}/large-$files-$sums
run=$(mktemp -d)
trap 'cleanup; rm -rf "$run"' EXIT
if [ ! -e "$work/done" ]; then
	rm -rf "$work"
	mkdir -p "$work"
	go run ./bench/largecache -dir "$work/cache" -files "$files" -sums "$sums"
	touch "$work/done"
fi

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
port=$(free_port)
serve() {
	bin/pkg-cacher serve cache_dir="$work/cache" logdir="$run/log" daemon_addr=127.0.0.1 daemon_port="$port" \
		allowed_locations=bench.invalid expire_days=0 2>"$run/serve.log" &
	pids[pkg-cacher]=$!
}
url=http://bench.invalid/debian/pool/main/p/pkg7/pkg7_1.0-1_amd64.deb

drop_caches
t0=$(now)
serve
until curl -fsS -o /dev/null -x "http://127.0.0.1:$port" "$url" 2>/dev/null; do sleep 0.01; done
first=$(since "$t0")
grep -q HIT "$run/log/access.log" || { echo "bench: the first answer was not a hit" >&2; exit 1; }
until grep -q 'checksums learned' "$run/serve.log"; do sleep 0.05; done
learned=$(since "$t0")
sleep 5 # the runtime returns what the learning's garbage took
rss=$(awk '/^VmRSS/ {print $2 / 1024}' "/proc/${pids[pkg-cacher]}/status")
hwm=$(awk '/^VmHWM/ {print $2 / 1024}' "/proc/${pids[pkg-cacher]}/status")
stop pkg-cacher

# The first hit after a kill -9 (the bodies a crash may have left are
# collected after the start).
serve
until curl -fsS -o /dev/null -x "http://127.0.0.1:$port" "$url" 2>/dev/null; do sleep 0.01; done
kill -9 "${pids[pkg-cacher]}"
wait "${pids[pkg-cacher]}" 2>/dev/null || true
unset 'pids[pkg-cacher]'
drop_caches
t0=$(now)
serve
until curl -fsS -o /dev/null -x "http://127.0.0.1:$port" "$url" 2>/dev/null; do sleep 0.01; done
crash_first=$(since "$t0")
until grep -q 'collected the bodies no index entry names' "$run/serve.log"; do sleep 0.05; done
crash_collected=$(since "$t0")
stop pkg-cacher

drop_caches
t0=$(now)
bin/pkg-cacher expire --dry-run cache_dir="$work/cache" expire_days=30 >"$run/expire.txt"
pass=$(since "$t0")
t0=$(now)
bin/pkg-cacher expire --dry-run cache_dir="$work/cache" expire_days=30 >"$run/expire.txt"
warm=$(since "$t0")
tail -1 "$run/expire.txt"
# As after a crash: the pass reads index/ file by file, and writes index.pack again.
rm "$work/cache/index.pack"
drop_caches
t0=$(now)
bin/pkg-cacher expire --dry-run cache_dir="$work/cache" expire_days=30 >"$run/expire.txt"
rebuilt=$(since "$t0")

cat <<TABLE
| measure | value | goal |
|---|---|---|
| start to first hit (s) | $(printf %.2f "$first") | ≤ 1 |
| start to checksums learned (s) | $(printf %.2f "$learned") | |
| start to first hit after a kill -9 (s) | $(printf %.2f "$crash_first") | ≤ 1 |
| start to the crash's leftovers collected, after a kill -9 (s) | $(printf %.2f "$crash_collected") | |
| resident memory after learning (MB) | $(printf %.0f "$rss") | ≤ 64 |
| peak resident memory (MB) | $(printf %.0f "$hwm") | |
| one expiry pass, dry run, page cache dropped (s) | $(printf %.2f "$pass") | ≤ 10 |
| the same, page cache warm (s) | $(printf %.2f "$warm") | ≤ 10 |
| the same after a crash (no index.pack), page cache dropped (s) | $(printf %.2f "$rebuilt") | |

$files files, $sums learned checksums; $(machine)
TABLE
