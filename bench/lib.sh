# shellcheck shell=bash disable=SC2154,SC2034 # variables set by, or for, the sourcing script
# Shell functions shared by bench/cache.sh and bench/dnf.sh; sourced, not run.
# The script sourcing it sets, before calling them:
#   work   the bench directory ($BENCH_DIR, default var/bench)
#   run    this run's directory (servers' configs and logs, raw.txt)
#   peers  the caches measured, pkg-cacher first (start_cache, row)
#   ports  associative array: cache name -> its port (start_cache)
#   squid_refresh  squid refresh_pattern lines for the packages and indexes
#          (start_cache squid); the catch-all ". 0 20% 4320" follows them
#   i      the current run's number (record, fail)
# and traps EXIT to cleanup, which stops every server started here.

declare -A pids # server name -> pid
stop() { # $1: server name
	local pid=${pids[$1]:-}
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	unset "pids[$1]"
}
cleanup() {
	for name in "${!pids[@]}"; do stop "$name"; done
}

# Ports below 32768: apt-cacher-ng 3.7.4 fails to bind ("Error resolving
# address for binding") to a Port above 32767.
used_ports=" 3142 3128 80 "
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		case "$used_ports" in *" $p "*) continue ;; esac
		ss -Htln "sport = :$p" | grep -q . && continue
		used_ports+="$p "
		echo "$p"
		return
	done
}
wait_port() { # $1: port, $2: name, $3: log to show on failure
	for _ in $(seq 200); do
		ss -Htln "sport = :$1" | grep -q . && return 0
		sleep 0.05
	done
	echo "bench: $2 did not start on 127.0.0.1:$1; see $3" >&2
	exit 1
}

# start_nginx ROOT: the upstream, nginx serving ROOT on a free loopback port,
# its access log ($body_bytes_sent) in $run/nginx/access.log. Sets nginx_port,
# ngx (its directory) and upstream (its URL).
start_nginx() {
	nginx_port=$(free_port)
	ngx=$run/nginx
	mkdir -p "$ngx/tmp"
	cat >"$ngx/nginx.conf" <<CONF
user root;
worker_processes auto;
pid $ngx/nginx.pid;
error_log $ngx/error.log;
events { worker_connections 4096; }
http {
	include /etc/nginx/mime.types;
	default_type application/octet-stream;
	log_format bench '\$status \$body_bytes_sent "\$request"';
	access_log $ngx/access.log bench;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 1000000;
	client_body_temp_path $ngx/tmp/body;
	proxy_temp_path $ngx/tmp/proxy;
	fastcgi_temp_path $ngx/tmp/fastcgi;
	uwsgi_temp_path $ngx/tmp/uwsgi;
	scgi_temp_path $ngx/tmp/scgi;
	server {
		listen 127.0.0.1:$nginx_port;
		root $1;
	}
}
CONF
	: >"$ngx/access.log"
	nginx -e "$ngx/error.log" -c "$ngx/nginx.conf" -g 'daemon off;' &
	pids[nginx]=$!
	wait_port "$nginx_port" nginx "$ngx/error.log"
	upstream=http://127.0.0.1:$nginx_port
}
log_mark() { wc -l <"$ngx/access.log"; }
bytes_since() { awk -v n="$1" 'NR > n {s += $2} END {printf "%d\n", s}' "$ngx/access.log"; }
requests_since() { awk -v n="$1" 'NR > n {c++} END {printf "%d\n", c}' "$ngx/access.log"; }

# start_cache NAME: a fresh, empty cache NAME (pkg-cacher, apt-cacher-ng or
# squid) on 127.0.0.1:${ports[NAME]}, in $run/NAME, forwarding to the nginx
# upstream. The logs of every earlier instance are kept in $run/logs/NAME-N.
starts=0
start_cache() {
	local c=$1 d=$run/$1 p=${ports[$1]}
	stop "$c"
	if [ -d "$d/log" ]; then
		starts=$((starts + 1))
		mkdir -p "$run/logs"
		mv "$d/log" "$run/logs/$c-$starts"
	fi
	rm -rf "$d"
	mkdir -p "$d/cache" "$d/log"
	case $c in
	pkg-cacher)
		bin/pkg-cacher serve cache_dir="$d/cache" logdir="$d/log" daemon_addr=127.0.0.1 daemon_port="$p" \
			allowed_locations="127.0.0.1:$nginx_port" 2>>"$d/log/stderr.log" &
		;;
	apt-cacher-ng)
		# AllowUserPorts: it forwards only to port 80 unless the upstream's port is listed.
		mkdir -p "$d/conf"
		cat >"$d/conf/acng.conf" <<CONF
CacheDir: $d/cache
LogDir: $d/log
SocketPath: $d/socket
PidFile: $d/pid
Port: $p
BindAddress: 127.0.0.1
AllowUserPorts: 80 $nginx_port
ExThreshold: 4
ReportPage: acng-report.html
CONF
		/usr/sbin/apt-cacher-ng -c "$d/conf" ForeGround=1 >>"$d/log/stderr.log" 2>&1 &
		;;
	squid)
		cat >"$d/squid.conf" <<CONF
http_port 127.0.0.1:$p
pid_filename $d/squid.pid
cache_effective_user proxy
cache_dir aufs $d/cache 4000 16 256
maximum_object_size 1 GB
collapsed_forwarding on
access_log stdio:$d/log/access.log
cache_log $d/log/cache.log
cache_store_log none
coredump_dir $d
$squid_refresh
refresh_pattern . 0 20% 4320
http_access allow localhost
http_access deny all
shutdown_lifetime 0 seconds
CONF
		chown -R proxy:proxy "$d"
		squid -z -N -f "$d/squid.conf" >>"$d/log/stderr.log" 2>&1
		squid -N -f "$d/squid.conf" >>"$d/log/stderr.log" 2>&1 &
		;;
	esac
	pids[$c]=$!
	wait_port "$p" "$c" "$d/log"
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {print b - a}'; }

declare -A res # "name metric" -> space-separated values
errors=()
record() { # $1: name, $2: metric, $3: value; every value also goes to $run/raw.txt
	res["$1 $2"]+="$3 "
	echo "run=$i $1 $2 $3" >>"$run/raw.txt"
}
fail() { # $1: name, $2: what
	errors+=("run $i: $1: $2")
	echo "bench: ERROR $1: $2" >&2
}

median() { tr ' ' '\n' | awk NF | sort -g | awk '{a[NR]=$1} END {if (NR) print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
m() { echo "${res["$1 $2"]:-}" | median; }
# row LABEL METRIC SCALE FORMAT [TARGET]: a table row with the medians of
# direct and each peer (value/SCALE), then the first peer's (pkg-cacher's)
# ratio to direct and to each other peer, then TARGET when given.
row() {
	local label=$1 metric=$2 scale=$3 fmt=$4 vals=() n
	for n in direct "${peers[@]}"; do vals+=("$(m "$n" "$metric")"); done
	awk -v label="$label" -v scale="$scale" -v fmt="$fmt" -v vals="$(IFS=,; echo "${vals[*]}")" \
		-v target="${5-}" -v has_target="$(($# > 4))" '
		function v(x) { return x == "" ? "—" : sprintf(fmt, x / scale) }
		function r(x) { return (x == "" || p == "" || x == 0) ? "—" : sprintf("%.2f", p / x) }
		BEGIN {
			k = split(vals, a, ","); p = a[2]
			line = "| " label
			for (j = 1; j <= k; j++) line = line " | " v(a[j])
			line = line " | " r(a[1])
			for (j = 3; j <= k; j++) line = line " | " r(a[j])
			if (has_target) line = line " | " target
			print line " |"
		}'
}

# The machine, for a section's description line.
machine() {
	local cpu mem
	cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
	mem=$(awk '/^MemTotal:/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
	echo "$(nproc) CPUs ($cpu), $mem, Debian $(cat /etc/debian_version), Linux $(uname -r)," \
		"$(findmnt -n -o FSTYPE --target "$work") for the caches" # stat -f says ext2/ext3 for ext4
}
ver() { dpkg-query -W -f='${Version}' "$1"; }
