# Shared code of the pacman script packager (vzpkg-packager(7)); each
# pacman-<operation> sources it. pacman runs from the host on $VZPKG_ROOT,
# with its databases and package cache, and a configuration written for the
# run: the template's repositories, through pkg-cacher when VZPKG_CACHER is
# set.
set -eu

die() {
	echo "${0##*/}: $*" >&2
	exit 1
}

: "${VZPKG_ROOT:?}" "${TMPDIR:?}"
realroot=$(readlink -f -- "$VZPKG_ROOT")

nl='
'
db=$VZPKG_ROOT/var/lib/pacman
log=$VZPKG_ROOT/var/log/pacman.log

# pacman's keyring for the run, made from the template's keys in the
# run's directory: no key material is left in the root (a container
# initialises its own, as Arch's images do with pacman-key --init).
gpgdir=$TMPDIR/gnupg

# in_root prints the host path of the root's file $1 (an absolute path in
# the root) when it is a regular file whose real path, symbolic links
# resolved, is in the root: no link of the root makes a script read the
# host's files.
in_root() {
	real=$(readlink -f -- "$VZPKG_ROOT$1") || return 1
	case $real in
	"$realroot"/*) [ -f "$real" ] && echo "$real" ;;
	*) return 1 ;;
	esac
}

# in_root_paths dies unless each of the root's paths $@ (absolute paths in
# the root), symbolic links resolved and a missing end allowed, is in the
# root and, when it exists, a file or directory (not a device, say): pacman
# writes its database, package cache and log through them as the host's
# root.
in_root_paths() {
	for p; do
		real=$(readlink -m -- "$VZPKG_ROOT$p")
		case $real in
		"$realroot"/*) ;;
		*) die "$p leads out of the root (to $real): refusing to write through it" ;;
		esac
		if [ -e "$real" ] && [ ! -f "$real" ] && [ ! -d "$real" ]; then
			die "$p is neither a file nor a directory: refusing to write to it"
		fi
	done
}

# through_cacher prints URL $1 in pkg-cacher's URL-prefix form when
# VZPKG_CACHER is set.
through_cacher() {
	c=${VZPKG_CACHER:-}
	c=${c%/}
	if [ -z "$c" ]; then
		echo "$1"
		return
	fi
	case $1 in
	https://*) echo "$c/HTTPS///${1#https://}" ;;
	http://*) echo "$c/${1#http://}" ;;
	*) echo "$1" ;;
	esac
}

# import_keys makes the run's keyring, trusting the template's keys
# (paths, or URLs fetched through pkg-cacher). Without keys it refuses to
# go on, as apt and dnf do: nothing unverified is installed.
import_keys() {
	if [ -z "${VZPKG_KEYS:-}" ]; then
		die "no signing keys (the template's keys:, or a container's /etc/pacman.d/vzpkg-keys): vzpkg installs no package it cannot verify"
	fi
	# pacman-key starts a gpg-agent, which leaves the process group.
	trap 'gpgconf --homedir "$gpgdir" --kill gpg-agent >/dev/null 2>&1 || true' EXIT
	pacman-key --gpgdir "$gpgdir" --init >&2
	i=0
	old=$IFS
	IFS=$nl
	for k in $VZPKG_KEYS; do
		i=$((i + 1))
		f=$TMPDIR/key$i
		case $k in
		http://* | https://*) curl -fsS --globoff -o "$f" "$(through_cacher "$k")" || die "fetch key $k failed" ;;
		*) cp "$k" "$f" ;;
		esac
		pacman-key --gpgdir "$gpgdir" --add "$f" >&2
		for fpr in $(gpg --homedir "$TMPDIR" --with-colons --show-keys "$f" 2>/dev/null | awk -F : '$1 == "fpr" && prev == "pub" { print $10 } { prev = $1 }'); do
			pacman-key --gpgdir "$gpgdir" --lsign-key "$fpr" >&2
		done
	done
	IFS=$old
}

# keep_keys copies the keys import_keys fetched into the root's
# /etc/pacman.d/vzpkg-keys (public keys only), where pacman-repos names
# them: vzpkg checks what it installs in a container of the template
# against them.
keep_keys() {
	dir=$VZPKG_ROOT/etc/pacman.d/vzpkg-keys
	mkdir -p "$dir"
	find "$dir" -mindepth 1 -maxdepth 1 -name '*.asc' -delete
	i=1
	while [ -f "$TMPDIR/key$i" ]; do
		cp "$TMPDIR/key$i" "$dir/$i.asc"
		i=$((i + 1))
	done
}

# repos prints a pacman section per repository of $VZPKG_REPOS, a Server
# line per mirror, in order.
repos() {
	awk -F '\t' '
		!($1 in servers) { order[++n] = $1 }
		{ servers[$1] = servers[$1] "Server = " $2 "\n" }
		END { for (i = 1; i <= n; i++) printf "[%s]\n%s", order[i], servers[order[i]] }
	' "$VZPKG_REPOS"
}

# prepare makes pacman's directories in the root and writes the run's
# pacman.conf.
prepare() {
	command -v pacman >/dev/null || die "pacman is not installed (Debian: apt-get install pacman-package-manager)"
	in_root_paths /var/lib/pacman /var/lib/pacman/local /var/lib/pacman/sync /var/cache/pacman/pkg /var/log/pacman.log /etc/pacman.d/hooks
	# Nor a link or special file in them (a local database entry, a
	# partial download pacman would append to).
	for d in "$db/local" "$db/sync" "$VZPKG_ROOT/var/cache/pacman/pkg"; do
		if [ -d "$d" ]; then
			bad=$(find "$d" -mindepth 1 -maxdepth 2 ! -type f ! -type d -print -quit)
			[ -z "$bad" ] || die "${bad#"$VZPKG_ROOT"} is a link or a special file: refusing to let pacman write through it"
		fi
	done
	mkdir -p "$db" "$VZPKG_ROOT/var/cache/pacman/pkg" "$VZPKG_ROOT/var/log"
	{
		printf '[options]\nArchitecture = %s\nSigLevel = Required DatabaseOptional\nLocalFileSigLevel = Optional\n' "$VZPKG_ARCH"
		repos
	} >"$TMPDIR/pacman.conf"
}

# pac runs pacman on the root with the run's configuration; the log goes
# to the root's /var/log/pacman.log unless --logfile is given first.
pac() {
	l=$log
	if [ "${1:-}" = --logfile ]; then
		l=$2
		shift 2
	fi
	v=
	[ "${VZPKG_VERBOSE:-0}" = 1 ] && v=--verbose
	pacman --noconfirm $v --config "$TMPDIR/pacman.conf" --root "$VZPKG_ROOT" --dbpath "$db" \
		--cachedir "$VZPKG_ROOT/var/cache/pacman/pkg" --gpgdir "$gpgdir" \
		--hookdir "$VZPKG_ROOT/etc/pacman.d/hooks" --logfile "$l" "$@"
}

# refresh downloads the sync databases, logging to the run's directory.
refresh() {
	pac --logfile "$TMPDIR/pacman.log" -Sy
}

# install_set installs the dummy package files and the template's packages
# that are missing.
install_set() {
	if [ -n "${VZPKG_DUMMIES:-}" ]; then
		(IFS=$nl; pac -U --needed $VZPKG_DUMMIES)
	fi
	if [ -n "${VZPKG_PACKAGES:-}" ]; then
		pac -S --needed $VZPKG_PACKAGES
	fi
}

# clean_cache removes the downloaded packages, which a template or a
# container does not need.
clean_cache() {
	find "$VZPKG_ROOT/var/cache/pacman/pkg" -mindepth 1 -maxdepth 1 -type f -name '*.pkg.tar*' -delete
}

# clamp_install_dates sets the install dates of the local database that
# are later than SOURCE_DATE_EPOCH, when it is set, to it: two builds of
# the same packages are then the same bytes.
clamp_install_dates() {
	if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
		return 0
	fi
	for desc in "$db"/local/*/desc; do
		if [ -f "$desc" ]; then
			awk -v t="$SOURCE_DATE_EPOCH" 'prev == "%INSTALLDATE%" && $0 + 0 > t + 0 { $0 = t } { print; prev = $0 }' "$desc" >"$TMPDIR/desc"
			mv "$TMPDIR/desc" "$desc"
		fi
	done
}

# write_repo_config writes the root's repository configuration:
# /etc/pacman.conf including /etc/pacman.d/repos/*.conf, a file per
# repository, its servers the upstream URLs, or with VZPKG_CACHER set
# the URLs through it, and each repository file without a *.disabled copy
# renamed to one first, so the original is kept.
write_repo_config() {
	dir=$VZPKG_ROOT/etc/pacman.d/repos
	mkdir -p "$dir"
	if [ -n "${VZPKG_CACHER:-}" ]; then
		for f in "$dir"/*.conf; do
			if [ -f "$f" ] && [ ! -e "$f.disabled" ]; then
				mv "$f" "$f.disabled"
			fi
		done
	fi
	printf '# Written by vzpkg: pacman reads its repositories from /etc/pacman.d/repos.\n[options]\nArchitecture = %s\nSigLevel = Required DatabaseOptional\nLocalFileSigLevel = Optional\nInclude = /etc/pacman.d/repos/*.conf\n' \
		"$VZPKG_ARCH" >"$VZPKG_ROOT/etc/pacman.conf.new"
	mv "$VZPKG_ROOT/etc/pacman.conf.new" "$VZPKG_ROOT/etc/pacman.conf"
	col=3 # the upstream URL
	if [ -n "${VZPKG_CACHER:-}" ]; then
		col=2
	fi
	for name in $(cut -f 1 "$VZPKG_REPOS" | awk '!seen[$0]++'); do
		awk -F '\t' -v n="$name" -v c="$col" '$1 == n { s = s "Server = " $c "\n" } END { printf "[%s]\n%s", n, s }' "$VZPKG_REPOS" >"$dir/$name.conf.new"
		mv "$dir/$name.conf.new" "$dir/$name.conf"
	done
}
