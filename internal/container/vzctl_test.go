package container_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// standIn writes stand-ins for vzlist and vzctl into a directory put first
// on PATH: they record every command line they are given (one line each,
// arguments separated by " | ") in log, and answer as OpenVZ would for
// container 101 (running) and 102 (stopped, its private area private),
// with canned output for the commands vzpkg runs in 101.
func standIn(t *testing.T, private string) (log string) {
	t.Helper()
	dir := t.TempDir()
	log = filepath.Join(dir, "log")
	record := `printf '%s' "$(basename "$0")" >> ` + log + `; for a in "$@"; do printf ' | %s' "$a" >> ` + log + `; done; echo >> ` + log + "\n"
	vzlist := "#!/bin/sh\n" + record + `case "$*" in
"-H -o ctid,status,private 101") echo "       101 running /vz/private/101" ;;
"-H -o ctid,status,private 102") echo "       102 stopped ` + private + `" ;;
"-H -o ctid,status,private 104") echo "       104 running /vz/private/104" ;;
"-a -H -o ctid,status,private") echo "       101 running /vz/private/101" ;;
*) echo "Container(s) not found" >&2; exit 1 ;;
esac
`
	vzctl := "#!/bin/sh\n" + record + `[ "$1" = exec2 ] || { echo "vzctl stand-in: unexpected $*" >&2; exit 9; }
case "$2 $3" in
"104 "*"cat /etc/vzpkg/packager"*) echo packager=dnf ;;
"104 "*"rpm -qa"*) printf 'bash\t(none):5.1.8-9.el9\tx86_64\ngpg-pubkey\t(none):1-2\t(none)\nvz-extra\t0:1.0-1\tnoarch\n' ;;
"104 "*"dnf -y install"*) echo "dnf ran" ;;
"104 "*) echo "vzctl stand-in: unexpected command $3" >&2; exit 9 ;;
"101 "*) case "$3" in
*"cat /etc/vzpkg/packager"*) echo packager=apt ;;
*dpkg-query*) printf 'ii \thello\t2.10-3\tamd64\nii \tlibc6\t2.36-9\tamd64\nrc \told\t1\tamd64\n' ;;
*"-s dist-upgrade"*) echo "Inst libc6 [2.36-9] (2.36-9+deb12u9 Debian:12/stable [amd64])" ;;
*apt-get*) echo "apt-get ran" ;;
*) echo "vzctl stand-in: unexpected command $3" >&2; exit 9 ;;
esac ;;
*) echo "vzctl stand-in: no container $2" >&2; exit 9 ;;
esac
`
	for name, body := range map[string]string{"vzlist": vzlist, "vzctl": vzctl} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	return log
}

// TestVzctlDriverStandIn checks the exact vzlist and vzctl command lines
// vzpkg gives for a running and a stopped OpenVZ container.
func TestVzctlDriverStandIn(t *testing.T) {
	private := t.TempDir()
	if err := os.MkdirAll(filepath.Join(private, "var/lib/dpkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	status := "Package: bash\nStatus: install ok installed\nVersion: 5.2.15-2+b7\nArchitecture: amd64\n\n" +
		"Package: gone\nStatus: deinstall ok config-files\nVersion: 1\nArchitecture: amd64\n"
	if err := os.WriteFile(filepath.Join(private, "var/lib/dpkg/status"), []byte(status), 0o644); err != nil {
		t.Fatal(err)
	}
	log := standIn(t, private)
	quoted := "env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive"
	detect := "vzctl | exec2 | 101 | " + quoted + " sh -c 'cat /etc/vzpkg/packager 2>/dev/null || { test -f /var/lib/dpkg/status && echo packager=apt; } || { command -v rpm >/dev/null && echo packager=dnf; }'"
	query := "vzctl | exec2 | 101 | " + quoted + " dpkg-query -W -f '${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n'"
	aptGet := "vzctl | exec2 | 101 | " + quoted + " apt-get -y -q -o Dpkg::Options::=--force-confold"
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderr   string
		commands []string
	}{
		{
			name:     "list a running container",
			args:     []string{"list", "101"},
			stdout:   "NAME   VERSION  ARCH\nhello  2.10-3   amd64\nlibc6  2.36-9   amd64\n",
			commands: []string{"vzlist | -H | -o | ctid,status,private | 101", detect, query},
		},
		{
			name:   "install in a running container",
			args:   []string{"install", "101", "hello"},
			stdout: "installed hello 2.10-3 amd64\n",
			commands: []string{"vzlist | -H | -o | ctid,status,private | 101", detect,
				aptGet + " update", aptGet + " install hello", query},
		},
		{
			name:     "remove from a running container",
			args:     []string{"remove", "101", "hello"},
			stdout:   "removed hello\n",
			commands: []string{"vzlist | -H | -o | ctid,status,private | 101", detect, query, aptGet + " remove hello"},
		},
		{
			name:     "list a stopped container from its private area",
			args:     []string{"list", "102"},
			stdout:   "NAME  VERSION      ARCH\nbash  5.2.15-2+b7  amd64\n",
			commands: []string{"vzlist | -H | -o | ctid,status,private | 102"},
		},
		{
			name:   "install in a running dnf container",
			args:   []string{"install", "104", "vz-extra"},
			stdout: "installed vz-extra 1.0-1 noarch\n",
			commands: []string{"vzlist | -H | -o | ctid,status,private | 104", strings.ReplaceAll(detect, " 101 ", " 104 "),
				"vzctl | exec2 | 104 | " + quoted + " dnf -y install vz-extra",
				"vzctl | exec2 | 104 | " + quoted + " rpm -qa --qf '%{name}\t%{epoch}:%{version}-%{release}\t%{arch}\n'"},
		},
		{
			name:     "unknown container",
			args:     []string{"list", "103"},
			code:     1,
			stderr:   "vzpkg: container 103: vzlist -H -o ctid,status,private 103: exit status 1: Container(s) not found\n",
			commands: []string{"vzlist | -H | -o | ctid,status,private | 103"},
		},
		{
			name:   "check-updates --all",
			args:   []string{"check-updates", "--all", "--driver", "vzctl"},
			code:   100,
			stdout: "CONTAINER  STATUS  DETAIL\n101        ok      1 updates\n",
			stderr: "[1/1] check-updates 101: ok 1 updates\n",
			commands: []string{"vzlist | -a | -H | -o | ctid,status,private", "vzlist | -H | -o | ctid,status,private | 101", detect,
				aptGet + " update", aptGet + " -s dist-upgrade"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(log)
			r := vzpkg(t, tt.args...)
			if r.code != tt.code || r.stdout != tt.stdout || r.stderr != tt.stderr {
				t.Errorf("vzpkg %s: exit %d, stdout %q, stderr %q; want %d, %q, %q", strings.Join(tt.args, " "), r.code, r.stdout, r.stderr, tt.code, tt.stdout, tt.stderr)
			}
			data, _ := os.ReadFile(log)
			got := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
			if strings.Join(got, "\n") != strings.Join(tt.commands, "\n") {
				t.Errorf("commands given:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.commands, "\n"))
			}
		})
	}
}
