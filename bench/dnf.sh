#!/usr/bin/env bash
# dnf benchmark (run as root; `make bench-dnf`, also run by `make bench`):
# pkg-cacher against squid configured as a package cache and nginx serving the
# files directly, dnf clients, all on loopback, runs alternating. Every server
# gets its own free 127.0.0.1 port and its own directory under
# $BENCH_DIR/run-dnf (default var/bench/run-dnf); all are stopped at exit.
#
# Upstream: nginx serving a local RPM repository of a distribution's shape,
# built once (no RPM distribution is reachable from the development machine)
# under $BENCH_DIR/rpm-mirror and kept between runs: $NRPMS (default 300)
# packages built with rpmbuild, laid out as Fedora's
# releases/40/Everything/x86_64/os/ (Packages/<initial>/, repodata/ by
# createrepo_c), unsigned. Payloads are random bytes (sizes are real, nothing
# compresses): most packages 10-500 KB, a few 1-10 KB, 12 of 1-8 MB, one of
# 20 MB; three in four x86_64, the rest noarch; most require one to three
# others, some with a version (">="). nginx's access log ($body_bytes_sent)
# counts the upstream bytes.
# Client: dnf 4 with its own dnf.conf (no reposdir, no plugins, own cachedir,
# logdir, persistdir and --installroot, gpgcheck=0, releasever 40), the cache
# as its proxy= (none for direct): dnf makecache, then dnf install
# --downloadonly --downloaddir of every package in the repository (dnf checks
# each file's checksum against primary.xml; the bench counts the files).
#
# Measures, per cache and run:
#   a cold, one client      a fresh cache, one client (wall time)
#   b warm, one client      a new client on the same cache, now holding everything
#   c cold, 4 clients       a fresh cache, four clients at once (wall time of all)
#   d upstream bytes for c  summed from nginx's log, and as a multiple of one client's data
# and the same with no cache ("direct": the clients straight to nginx). Prints a
# Markdown table of medians with pkg-cacher's ratios and appends it, with the
# machine description, to docs/benchmarks.md.
# RUNS=N sets the runs (default 3); BENCH_DOCS the file the section is appended
# to (default docs/benchmarks.md). Servers, tables and the machine line:
# bench/lib.sh, shared with bench/cache.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh
t_start=$(date +%s)
load_start=$(cut -d' ' -f1 /proc/loadavg) # other work on the machine competes for the CPUs
source scripts/setup.sh >/dev/null # rpmbuild, createrepo_c, dnf; builds bin/pkg-cacher
bash bench/setup.sh                 # nginx-light, squid

runs=${RUNS:-3}
nrpms=${NRPMS:-300}
work=${BENCH_DIR:-$PWD/var/bench}
mirror=$work/rpm-mirror
releasever=40
repo_path=releases/$releasever/Everything/x86_64/os # under $mirror; baseurl uses $releasever and $basearch
repo=$mirror/$repo_path

# --- the RPM repository ----------------------------------------------------
# build_rpm LINE: builds one package of the manifest (tab-separated: name,
# version, release, arch, payload size, requirements separated by ";") in its
# own staging directory under $stage and moves it into $pkgdir/<initial>/.
build_rpm() {
	local name version release arch size reqs s r
	IFS=$'\t' read -r name version release arch size reqs <<<"$1"
	s=$stage/$name
	mkdir -p "$s"
	head -c "$size" /dev/urandom >"$s/data"
	{
		printf 'Name: %s\nVersion: %s\nRelease: %s\nSummary: bench package %s\nLicense: MIT\n' \
			"$name" "$version" "$release" "$name"
		printf 'BuildArch: %s\nAutoReqProv: no\n' "$arch"
		IFS=';'
		for r in $reqs; do printf 'Requires: %s\n' "$r"; done
		unset IFS
		printf '\n%%description\n%s bytes of random data.\n' "$size"
		printf '\n%%install\ninstall -D -m 0644 %s %%{buildroot}/usr/share/%s/data\n' "$s/data" "$name"
		printf '\n%%files\n/usr/share/%s/data\n' "$name"
	} >"$s/$name.spec"
	# No debuginfo, no brp scripts (nothing to strip); zstd level 3 (Fedora
	# uses 19, far slower and no smaller for random bytes).
	HOME=$s SOURCE_DATE_EPOCH=1700000000 rpmbuild --quiet -bb \
		--define "_topdir $s/top" \
		--define "_build_id_links none" \
		--define "debug_package %{nil}" \
		--define "__os_install_post %{nil}" \
		--define "_binary_payload w3.zstdio" \
		--define "use_source_date_epoch_as_buildtime 1" \
		"$s/$name.spec" >"$s/rpmbuild.log" 2>&1 || { cat "$s/rpmbuild.log" >&2; return 1; }
	mkdir -p "$pkgdir/${name:0:1}"
	mv "$s/top/RPMS/$arch/$name-$version-$release.$arch.rpm" "$pkgdir/${name:0:1}/"
	rm -rf "$s"
}

# The manifest: names from a few prefixes and random syllables; sizes and
# dependencies as the header says. awk's srand(40) makes it the same each time.
manifest() { # $1: number of packages
	awk -v n="$1" 'BEGIN {
		srand(40)
		np = split("lib lib lib python3- python3- perl- golang- rust- texlive- . . . .", pre, " ")
		nc = split("b c d f g h j k l m n p r s t v w x z", cons, " ")
		nv = split("a e i o u y", vow, " ")
		for (k = 1; k <= n; k++) {
			do {
				w = ""
				for (s = 0; s < 2 + int(rand() * 2); s++) w = w cons[1 + int(rand() * nc)] vow[1 + int(rand() * nv)]
				p = pre[1 + int(rand() * np)]
				name[k] = (p == "." ? "" : p) w
			} while (name[k] in seen)
			seen[name[k]] = 1
			ver[k] = int(rand() * 5) "." int(rand() * 20) "." int(rand() * 10)
			rel[k] = (1 + int(rand() * 3)) ".fc40"
			arch[k] = rand() < 0.75 ? "x86_64" : "noarch"
			perm[k] = k
		}
		for (k = n; k > 1; k--) { j = 1 + int(rand() * k); t = perm[k]; perm[k] = perm[j]; perm[j] = t }
		for (k = 1; k <= n; k++) {
			x = perm[k]
			if (k == 1) size[x] = 20000000
			else if (k <= 13) size[x] = int(exp(log(1e6) + rand() * log(8)))
			else if (k <= 21) size[x] = int(exp(log(1e3) + rand() * log(10)))
			else size[x] = int(exp(log(1e4) + rand() * log(50)))
		}
		for (k = 1; k <= n; k++) {
			reqs = ""
			if (k > 5 && rand() < 0.7) {
				split("", used)
				for (r = 1 + int(rand() * 3); r > 0; r--) {
					j = 1 + int(rand() * (k - 1))
					if (j in used) continue
					used[j] = 1
					req = rand() < 0.3 ? name[j] " >= " ver[j] : name[j]
					reqs = reqs (reqs == "" ? "" : ";") req
				}
			}
			printf "%s\t%s\t%s\t%s\t%d\t%s\n", name[k], ver[k], rel[k], arch[k], size[k], reqs
		}
	}'
}

if [ ! -s "$repo/repodata/repomd.xml" ]; then
	echo "bench: building $nrpms RPMs into $mirror" >&2
	t=$(date +%s)
	tmp=$work/rpm-mirror.tmp
	rm -rf "$tmp" "$mirror"
	stage=$tmp/stage
	pkgdir=$tmp/$repo_path/Packages
	mkdir -p "$stage" "$pkgdir"
	manifest "$nrpms" >"$tmp/manifest.tsv"
	export stage pkgdir
	export -f build_rpm
	# shellcheck disable=SC2016 # $1 is bash -c's
	xargs -d '\n' -n 1 -P "$(nproc)" bash -c 'build_rpm "$1"' _ <"$tmp/manifest.tsv"
	got=$(find "$pkgdir" -name '*.rpm' | wc -l)
	[ "$got" -eq "$nrpms" ] || { echo "bench: built $got RPMs, want $nrpms" >&2; exit 1; }
	createrepo_c --quiet "$tmp/$repo_path"
	rmdir "$stage"
	mv "$tmp" "$mirror"
	echo "bench: built $mirror in $(($(date +%s) - t)) s" >&2
fi
npkgs=$(find "$repo/Packages" -name '*.rpm' | wc -l)
mirror_mb=$(du -sm "$repo/Packages" | cut -f1)

run=$work/run-dnf
rm -rf "$run"
mkdir -p "$run"
cut -f1 "$mirror/manifest.tsv" | sort >"$run/names.txt"
[ "$(wc -l <"$run/names.txt")" -eq "$npkgs" ] || {
	echo "bench: $mirror/manifest.tsv does not match $repo/Packages: remove $mirror to rebuild it" >&2
	exit 1
}
peers=(pkg-cacher squid)
trap cleanup EXIT

# --- upstream: nginx -------------------------------------------------------
start_nginx "$mirror"

# --- the caches ------------------------------------------------------------
# Started by start_cache (bench/lib.sh); squid as a package cache: .rpm and
# checksum-named repodata fresh for 90 days, repomd.xml always revalidated.
declare -A ports
for c in "${peers[@]}"; do ports[$c]=$(free_port); done
squid_refresh='refresh_pattern \.(rpm|drpm)$ 129600 100% 129600
refresh_pattern /repodata/[0-9a-f]{64}-[^/]+$ 129600 100% 129600
refresh_pattern /repodata/repomd\.xml(\.asc|\.key)?$ 0 0% 0'

# --- dnf clients -----------------------------------------------------------
# client DIR PROXY: makecache and download every package; PROXY empty is direct.
client() {
	local d=$1 proxy=$2
	rm -rf "$d"
	mkdir -p "$d/root" "$d/empty" "$d/cache" "$d/log" "$d/persist" "$d/rpms"
	cat >"$d/dnf.conf" <<CONF
[main]
reposdir=$d/empty
varsdir=$d/empty
cachedir=$d/cache
logdir=$d/log
persistdir=$d/persist
plugins=0
gpgcheck=0
install_weak_deps=0
skip_if_unavailable=0
${proxy:+proxy=$proxy}

[bench]
name=bench Fedora \$releasever - \$basearch
baseurl=$upstream/releases/\$releasever/Everything/\$basearch/os/
gpgcheck=0
repo_gpgcheck=0
CONF
	# The command line wins over anything in the install root; no proxy or
	# no_proxy from the environment (libcurl honours no_proxy even for proxy=).
	local dnf=(env -u http_proxy -u HTTP_PROXY -u https_proxy -u HTTPS_PROXY -u all_proxy -u ALL_PROXY
		-u no_proxy -u NO_PROXY LC_ALL=C dnf --config="$d/dnf.conf" --installroot="$d/root"
		--releasever="$releasever" --setopt=reposdir="$d/empty" --setopt=cachedir="$d/cache"
		--nogpgcheck --assumeyes)
	local t0
	t0=$(now)
	if ! "${dnf[@]}" makecache >"$d/makecache.log" 2>&1; then
		echo "dnf makecache failed: $d/makecache.log" >&2
		return 1
	fi
	echo "makecache $(since "$t0") s" >"$d/times.txt"
	t0=$(now)
	if ! xargs "${dnf[@]}" install --downloadonly --downloaddir="$d/rpms" <"$run/names.txt" >"$d/download.log" 2>&1; then
		echo "dnf install --downloadonly failed: $d/download.log" >&2
		return 1
	fi
	echo "download $(since "$t0") s" >>"$d/times.txt"
	local got
	got=$(find "$d/rpms" -name '*.rpm' | wc -l)
	[ "$got" -eq "$npkgs" ] || { echo "$d: $got packages, want $npkgs" >&2; return 1; }
	rm -rf "$d/rpms" "$d/cache" "$d/root" # keep the logs, not the data
}

single() { # $1: name, $2: metric, $3: proxy
	local t
	t=$(now)
	if client "$run/clients/$i-$1-$2" "$3"; then record "$1" "$2" "$(since "$t")"; else fail "$1" "$2"; fi
}
fleet() { # $1: name, $2: proxy
	local t k ok=1 cpids=()
	t=$(now)
	for k in $(seq 4); do
		client "$run/clients/$i-$1-fleet-$k" "$2" &
		cpids+=($!)
	done
	for k in "${cpids[@]}"; do wait "$k" || ok=0; done
	if [ $ok = 1 ]; then record "$1" fleet "$(since "$t")"; else fail "$1" "fleet: a client failed"; fi
}

for i in $(seq "$runs"); do
	echo "run $i/$runs: direct" >&2
	mark=$(log_mark)
	single direct cold ""
	record direct data "$(bytes_since "$mark")"
	mark=$(log_mark)
	fleet direct ""
	record direct upstream "$(bytes_since "$mark")"
	for c in "${peers[@]}"; do
		echo "run $i/$runs: $c" >&2
		proxy=http://127.0.0.1:${ports[$c]}
		start_cache "$c"
		single "$c" cold "$proxy"
		mark=$(log_mark)
		single "$c" warm "$proxy"
		# A warm client that fetches packages upstream went around the cache.
		record "$c" warm-upstream "$(bytes_since "$mark")"
		if [ "$(awk -v n="$mark" 'NR > n && /\.rpm / {c++} END {print c + 0}' "$ngx/access.log")" -gt 0 ]; then
			fail "$c" "warm: .rpm files fetched from upstream (see $ngx/access.log)"
		fi
		start_cache "$c"
		mark=$(log_mark)
		fleet "$c" "$proxy"
		record "$c" upstream "$(bytes_since "$mark")"
		stop "$c"
	done
done
cleanup

# --- table -----------------------------------------------------------------
data=$(m direct data)
table() {
	echo "| measure | direct (nginx) | pkg-cacher | squid | pkg-cacher / direct | pkg-cacher / squid |"
	echo "|---|---|---|---|---|---|"
	row "a cold, one client (s)" cold 1 %.2f
	res["direct warm"]=${res["direct cold"]:-}
	row "b warm, one client (s)" warm 1 %.2f
	row "c cold, 4 clients (s)" fleet 1 %.2f
	row "d upstream bytes for c (MB)" upstream 1e6 %.1f
	row "d upstream bytes for c (× one client's data)" upstream "$data" %.2f
}

load_end=$(cut -d' ' -f1 /proc/loadavg)
mb() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1e6}'; }
report=$run/report.md
{
	echo
	echo "### dnf: run of $(date -u '+%F %H:%M') UTC, RUNS=$runs"
	echo
	echo "$(machine); pkg-cacher $(git describe --always --dirty) (bin/pkg-cacher built from the working tree)," \
		"squid $(ver squid), nginx-light $(ver nginx-light), dnf $(ver dnf), createrepo-c $(ver createrepo-c)." \
		"Repository: $npkgs RPMs, $mirror_mb MB; one client's data $(mb "$data") MB (metadata and packages)." \
		"Upstream bytes during b: pkg-cacher $(mb "$(m pkg-cacher warm-upstream)") MB, squid $(mb "$(m squid warm-upstream)") MB." \
		"Load average (1 min) $load_start at the start, $load_end at the end; the whole run took $(($(date +%s) - t_start)) s." \
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
echo "bench: appended to ${BENCH_DOCS:-docs/benchmarks.md}; every value in $run/raw.txt, logs in $run/logs, clients (times.txt: makecache and download) in $run/clients" >&2
