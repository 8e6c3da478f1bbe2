#!/usr/bin/env bash
# Installs what bench/cache.sh needs on Debian 12 (run as root): the peers it
# measures (apt-cacher-ng, squid), the local upstream (nginx-light), wrk, and
# apt-utils for apt-ftparchive. A policy-rc.d that exits 101 keeps every server
# package from starting on its default port while it is installed; any
# instance that started anyway is stopped and disabled, so nothing is left
# listening on 3142 (apt-cacher-ng), 3128 (squid) or 80 (nginx). Idempotent;
# run by bench/cache.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bench_debs=(nginx-light apt-cacher-ng squid wrk apt-utils dpkg-dev)
missing=()
for p in "${bench_debs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	apt-get update -q
	echo "apt-cacher-ng apt-cacher-ng/tunnelenable boolean false" | debconf-set-selections
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
	rm -f /usr/sbin/policy-rc.d
	trap - EXIT
fi
# The services the packages ship must not run: the bench starts its own
# instances on free loopback ports.
for svc in apt-cacher-ng squid nginx; do
	if command -v systemctl >/dev/null; then
		if [ -d /run/systemd/system ]; then
			systemctl disable --now "$svc" >/dev/null 2>&1 || true
		else
			systemctl disable "$svc" >/dev/null 2>&1 || true # no systemd running: just the links
		fi
	fi
	if [ -x "/etc/init.d/$svc" ]; then "/etc/init.d/$svc" stop >/dev/null 2>&1 || true; fi
done
