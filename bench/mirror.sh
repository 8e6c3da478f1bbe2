#!/usr/bin/env bash
# Builds the local upstream for bench/cache.sh (run as root): a mirror of about
# 300 real Debian 12 packages under $BENCH_DIR/mirror/debian (default
# var/bench/mirror/debian), laid out as an apt repository for bookworm/main/amd64.
# The packages are fetched once from deb.debian.org with apt-get download,
# under an isolated APT_CONFIG (its own sources, lists and cache in
# $BENCH_DIR/apt-fetch), and kept between runs; the indexes are rebuilt each
# time with apt-ftparchive. The Release file is not signed: clients use
# [trusted=yes].
#
# The set: every package of priority required, important and standard, every
# tenth optional python3-* package (sorted by name), gcc-12 (the ~19 MB hot
# file) and python3-aiofiles (the ~10 KB one).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

work=${BENCH_DIR:-$PWD/var/bench}
fetch=$work/apt-fetch
repo=$work/mirror/debian
pool=$repo/pool/main
mkdir -p "$fetch/lists/partial" "$fetch/archives/partial" "$pool" "$repo/dists/bookworm/main/binary-amd64"

if [ ! -s "$work/mirror/packages.txt" ]; then
	echo 'deb http://deb.debian.org/debian bookworm main' >"$fetch/sources.list"
	: >"$fetch/status"
	cat >"$fetch/apt.conf" <<CONF
Dir::Etc::sourcelist "$fetch/sources.list";
Dir::Etc::sourceparts "/nonexistent";
Dir::State::lists "$fetch/lists";
Dir::State::status "$fetch/status";
Dir::Cache "$fetch";
Dir::Cache::archives "$fetch/archives";
APT::Architecture "amd64";
APT::Architectures "amd64";
CONF
	export APT_CONFIG=$fetch/apt.conf
	apt-get update -q >&2
	apt-cache dumpavail | awk '
		/^Package:/ {p = $2} /^Priority:/ {pr = $2}
		/^$/ { if (p != "") print p, pr; p = ""; pr = "" }' | sort -u >"$fetch/avail.txt"
	{
		awk '$2 == "required" || $2 == "important" || $2 == "standard" {print $1}' "$fetch/avail.txt"
		awk '$1 ~ /^python3-/ && $2 == "optional" {print $1}' "$fetch/avail.txt" | awk 'NR % 10 == 0'
		echo gcc-12
		echo python3-aiofiles
	} | sort -u >"$fetch/want.txt"
	(cd "$pool" && xargs apt-get download -q <"$fetch/want.txt" >&2)
	cp "$fetch/want.txt" "$work/mirror/packages.txt"
	unset APT_CONFIG
fi

# Indexes: Packages (plain, .gz, .xz) and an unsigned Release with their hashes.
(
	cd "$repo"
	rm -f dists/bookworm/Release
	apt-ftparchive packages pool/main >dists/bookworm/main/binary-amd64/Packages
	gzip -9nkf dists/bookworm/main/binary-amd64/Packages
	xz -kf dists/bookworm/main/binary-amd64/Packages
	apt-ftparchive -o APT::FTPArchive::Release::Suite=bookworm -o APT::FTPArchive::Release::Codename=bookworm \
		-o APT::FTPArchive::Release::Architectures=amd64 -o APT::FTPArchive::Release::Components=main \
		release dists/bookworm >../Release.tmp # outside the tree, or Release lists itself
	mv ../Release.tmp dists/bookworm/Release
)
echo "mirror: $(ls "$pool" | wc -l) packages, $(du -sm "$pool" | cut -f1) MB in $repo" >&2
