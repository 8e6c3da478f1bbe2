#!/usr/bin/env bash
# Template build benchmark (run as root; `make bench-template`): vzpkg create
# cache against the tool people use to make the same root and a tar.gz of it,
# each case through one warm pkg-cacher, runs alternating. CASES="apt dnf"
# (the default) picks the cases; RUNS=N sets the runs per tool (default 3).
#
# apt: debian-12-x86_64-minimal from deb.debian.org (the network). Peers:
#   mmdebstrap-minbase   mmdebstrap --variant=minbase bookworm out.tar.gz (the tool people use)
#   mmdebstrap-same-set  the same, with the template's packages (--include) and merged /usr
#                        laid out the same way: the template's packages, but not slim
#   mmdebstrap-same-set-slim  the same set slim too: the template's path_exclude and
#                        path_include as --dpkgopt, mmdebstrap's own way; equal contents
#                        but for the dummies and fixups
#
# dnf: no RPM distribution is reachable from the development machine, so the
# upstream is nginx on loopback serving a local one made of the host's own
# binaries by bench/rpmdist (about 100 packages, 140 MB installed, signed, xz
# payloads as EL 8 and 9's), built once into $BENCH_DIR/rpm-dist and kept.
# The template vzbench-1-x86_64-minimal (written under the run directory) has
# the shipped EL templates' shape: its root packages, kernel and firmware
# dummies, gpgcheck with the repository's key, the shipped fixups. Peer:
#   dnf-installroot      dnf --installroot of the same packages, gpgcheck on, the same
#                        repository through the same pkg-cacher, then tar | pigz, then the
#                        root removed (vzpkg removes its own too); the root on disk, in
#                        $BENCH_DIR, as a user would make it
#   dnf-installroot-tmpfs  the same with the root in /dev/shm, as vzpkg builds it (in
#                        memory when half the available memory is 2 GiB or more)
#
# Prints a Markdown table per case of median wall times and tarball sizes,
# with ratios vzpkg / peer, and the load average before and after.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh >/dev/null
source bench/lib.sh # start_nginx, cleanup, machine

runs=${RUNS:-3}
cases=${CASES:-apt dnf}
work=${BENCH_DIR:-$PWD/var/bench}
mkdir -p "$work/out"
export SOURCE_DATE_EPOCH=1700000000
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
trap 'cleanup; rm -rf "$work/out" /dev/shm/vzbench-dnf' EXIT

# start_cacher NAME [SETTING...]: pkg-cacher on a free loopback port
# (daemon_port=0; its start line names the address), caching in $work/NAME.
# Sets cacher to its URL.
start_cacher() {
	local d=$work/$1 addr=
	mkdir -p "$d/log"
	: >"$d/log/pkg-cacher.log"
	bin/pkg-cacher serve cache_dir="$d/cache" logdir="$d/log" daemon_addr=127.0.0.1 daemon_port=0 "${@:2}" 2>>"$d/log/pkg-cacher.log" &
	pids[pkg-cacher-$1]=$!
	for _ in $(seq 100); do
		addr=$(sed -n '/pkg-cacher serving/s/.* addr=\([^ ]*\).*/\1/p' "$d/log/pkg-cacher.log")
		[ -n "$addr" ] && break
		sleep 0.1
	done
	[ -n "$addr" ] || { echo "bench: pkg-cacher did not start; see $d/log/pkg-cacher.log" >&2; exit 1; }
	cacher=http://$addr/
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
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
table() { # $1: title, rest: tool names, vzpkg's first
	local vt vs t s name
	vt=$(echo "${times[$2]}" | median)
	vs=$(echo "${sizes[$2]}" | median)
	echo
	echo "$1, $runs runs each, medians ($(nproc) CPUs, $(date -u +%F))"
	echo
	echo "| tool | wall time (s) | vzpkg / tool | tarball (MB) | vzpkg / tool |"
	echo "|---|---|---|---|---|"
	for name in "${@:2}"; do
		t=$(echo "${times[$name]}" | median)
		s=$(echo "${sizes[$name]}" | median)
		awk -v n="$name" -v t="$t" -v s="$s" -v vt="$vt" -v vs="$vs" 'BEGIN {printf "| %s | %.1f | %.2f | %.1f | %.2f |\n", n, t, vt / t, s / 1e6, vs / s}'
	done
}

apt_case() {
	local template=debian-12-x86_64-minimal include mirror="deb http://deb.debian.org/debian bookworm main"
	start_cacher apt
	include=$(bin/vzpkg show-config "$template" | awk '/^packages:/{p=1; next} /^[a-z]/{p=0} p && /^  - /{print $2}' | paste -sd, -)
	# The template's dpkg path filters, as dpkg configuration lines for --dpkgopt.
	bin/vzpkg show-config "$template" | awk '/^path_(exclude|include):/{p=substr($1, 6, 7); next} /^[a-z]/{p=""} p && /^  - /{print "path-" p "=" $2}' >"$work/slim.dpkgopt"
	[ -s "$work/slim.dpkgopt" ] || { echo "bench: $template has no path filters" >&2; exit 1; }

	vzpkg_run() { bin/vzpkg create cache "$template" --cache-dir "$work/out" --cacher "$cacher" -q >/dev/null; echo "$work/out/$template.tar.gz"; }
	mm_run() { # $1: extra mmdebstrap arguments
		rm -f "$work/out/mm.tar.gz"
		mmdebstrap -q --variant=minbase --aptopt="Acquire::http::Proxy \"$cacher\"" $1 bookworm "$work/out/mm.tar.gz" "$mirror"
		echo "$work/out/mm.tar.gz"
	}
	echo "apt: warming the cache..." >&2
	vzpkg_run >/dev/null
	mm_run "--include=$include --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr" >/dev/null
	for i in $(seq "$runs"); do
		echo "apt: run $i/$runs" >&2
		measure vzpkg vzpkg_run
		measure mmdebstrap-minbase mm_run ""
		measure mmdebstrap-same-set mm_run "--include=$include --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr"
		measure mmdebstrap-same-set-slim mm_run "--include=$include --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr --dpkgopt=$work/slim.dpkgopt"
	done
	table "Template build ($template) through a warm pkg-cacher" vzpkg mmdebstrap-minbase mmdebstrap-same-set mmdebstrap-same-set-slim
}

dnf_case() {
	local dist=$work/rpm-dist template=vzbench-1-x86_64-minimal tree run=$work/run-template-dnf pkgs
	# The distribution's roots: what an EL minimal template installs, in
	# Debian's names; those not installed on the host are left out.
	local roots=base-files,bash,coreutils,util-linux,procps,iproute2,less,findutils,grep,sed,mawk,tar,gzip,xz-utils,systemd,ca-certificates,python3,logrotate
	if [ ! -s "$dist/repodata/repomd.xml" ]; then
		echo "dnf: building the RPM distribution into $dist" >&2
		rm -rf "$dist"
		go run ./bench/rpmdist -out "$dist" -roots "$roots" >&2
	fi
	command -v nginx >/dev/null || bash bench/setup.sh # nginx-light, the upstream
	rm -rf "$run"
	mkdir -p "$run/www"
	ln -s "$dist" "$run/www/1" # release 1
	start_nginx "$run/www"
	start_cacher dnf allowed_locations="127.0.0.1:$nginx_port"
	pkgs=$(rpm -qp --qf '%{NAME}\n' "$dist"/Packages/*/*.rpm 2>/dev/null | grep -Fxf <(tr , '\n' <<<"$roots") | paste -sd' ' -)

	tree=$run/tree
	mkdir -p "$tree/vzbench/1/x86_64"
	: >"$tree/vzbench/1/x86_64/config.yaml"
	echo 'releasever: "1"' >"$tree/vzbench/1/config.yaml"
	cat >"$tree/vzbench/config.yaml" <<CONF
packager: dnf
use_cacher: true
keys:
  - $upstream/\${releasever}/RPM-GPG-KEY-vzbench
repos:
  base:
    mirrors:
      - $upstream/\${releasever}/
fixups: [machine-id-empty, ssh-host-keys-regenerate, hostname-empty, fstab-empty, getty-disable, systemd-container, logs-truncate, dnf-clean, rpmdb-rebuild, selinux-disable]
sets:
  minimal:
    packages: [${pkgs// /, }]
    dummies:
      - {name: kernel, version: "99:1.0-vz1", provides: [kernel-core, kernel-modules, kernel-modules-core]}
      - {name: linux-firmware, version: "99:1.0-vz1"}
CONF
	bin/vzpkg --templates "$tree" check >&2

	vzpkg_dnf_run() { bin/vzpkg --templates "$tree" create cache "$template" --cache-dir "$work/out" --cacher "$cacher" -q >/dev/null; echo "$work/out/$template.tar.gz"; }
	# The peer: the same repository and key through the same pkg-cacher
	# (URL-prefix form, as vzpkg uses it), dnf's own defaults otherwise.
	dnf_run() { # $1: the directory to work in (the root is made in it)
		local d=$1 base=${cacher}127.0.0.1:$nginx_port/1
		rm -rf "$d" "$work/out/dnf.tar.gz"
		mkdir -p "$d/root" "$d/repos"
		printf '[main]\ngpgcheck=1\ninstall_weak_deps=0\nplugins=0\nreposdir=%s\ncachedir=%s\n' "$d/repos" "$d/cache" >"$d/dnf.conf"
		printf '[base]\nname=base\nbaseurl=%s/\ngpgcheck=1\ngpgkey=%s/RPM-GPG-KEY-vzbench\n' "$base" "$base" >"$d/repos/base.repo"
		# shellcheck disable=SC2086 # one word per package
		dnf -q --config="$d/dnf.conf" --installroot="$d/root" --releasever=1 --setopt=reposdir="$d/repos" --assumeyes install $pkgs >/dev/null
		tar -C "$d/root" --numeric-owner -cf - . | pigz >"$work/out/dnf.tar.gz"
		rm -rf "$d"
		echo "$work/out/dnf.tar.gz"
	}
	echo "dnf: warming the cache..." >&2
	vzpkg_dnf_run >/dev/null
	dnf_run "$work/out/dnf" >/dev/null
	for i in $(seq "$runs"); do
		echo "dnf: run $i/$runs" >&2
		measure vzpkg-dnf vzpkg_dnf_run
		measure dnf-installroot dnf_run "$work/out/dnf"
		measure dnf-installroot-tmpfs dnf_run /dev/shm/vzbench-dnf
	done
	echo
	echo "dnf distribution: $(find "$dist/Packages" -name '*.rpm' | wc -l) RPMs, $(du -sm "$dist/Packages" | cut -f1) MB; the template's packages: $pkgs"
	table "Template build ($template, local RPM distribution) through a warm pkg-cacher" vzpkg-dnf dnf-installroot dnf-installroot-tmpfs
}

for c in $cases; do
	case $c in
	apt) apt_case ;;
	dnf) dnf_case ;;
	*) echo "bench: unknown case $c (use apt, dnf)" >&2; exit 1 ;;
	esac
done
echo
echo "$(machine); load average $load_start before, $(cut -d' ' -f1-3 /proc/loadavg) after."
