package packaging_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"vzpkg2/internal/packaging"
	"vzpkg2/internal/repotest"
)

// TestDebInLXCContainer installs the .deb in a Debian 12 container booted
// with systemd and uses it as an administrator would. The container's
// network namespace holds loopback only: its pkg-cacher listens on its own
// 127.0.0.1:3142 (the packaged configuration), and reaches upstream through
// the test's pkg-cacher on the host, forwarded into the container at the
// address the template's sources name. It needs root, LXC and the network
// to reach deb.debian.org.
func TestDebInLXCContainer(t *testing.T) {
	deb, newer := build(t, packaging.Deb, ""), build(t, packaging.Deb, "+newer")
	host := repotest.StartCacher(t, bin)
	out := t.TempDir()
	const template = "debian-12-x86_64-minimal"
	cmd := exec.Command(filepath.Join(bin, "vzpkg"), "--templates", filepath.Join(src, "templates"), "create", "cache", template,
		"--cache-dir", out, "--cacher", host.URL, "--quiet")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("vzpkg create cache: %v\n%s", err, b)
	}
	root := filepath.Join(t.TempDir(), "rootfs")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "tar", "-xpf", filepath.Join(out, template+".tar.gz"), "-C", root, "--numeric-owner", "--xattrs", "--xattrs-include=*")
	for _, p := range []string{deb, newer} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "root", filepath.Base(p)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	ct := repotest.StartLXC(t, root)
	upstream := strings.TrimSuffix(strings.TrimPrefix(host.URL, "http://"), "/")
	ct.Forward(t, upstream)
	sh := func(script string) string {
		t.Helper()
		out, err := ct.Attach("sh", "-ec", script)
		if err != nil {
			t.Fatalf("in the container: %s: %v\n%s", script, err, out)
		}
		return out
	}
	fails := func(script string) {
		t.Helper()
		if out, err := ct.Attach("sh", "-c", script); err == nil {
			t.Errorf("in the container, %s succeeds:\n%s", script, out)
		}
	}

	// Installed, it starts nothing and enables nothing.
	sh("apt-get install -y -q ./root/" + filepath.Base(deb))
	if got := strings.TrimSpace(sh("systemctl is-enabled pkg-cacher.service vzpkg-update-cache.timer || true")); got != "disabled\ndisabled" {
		t.Errorf("systemctl is-enabled after install: %q, want disabled twice", got)
	}
	if got := strings.TrimSpace(sh("systemctl is-active pkg-cacher.service vzpkg-update-cache.timer || true")); got != "inactive\ninactive" {
		t.Errorf("systemctl is-active after install: %q, want inactive twice", got)
	}
	if got := sh("stat -c '%U:%G %a' /var/cache/pkg-cacher /var/log/pkg-cacher"); got != "pkg-cacher:pkg-cacher 750\npkg-cacher:pkg-cacher 750\n" {
		t.Errorf("cache and log directories: %q", got)
	}
	// pkg-cacher.conf may hold a proxy's password.
	if got := sh("stat -c '%U:%G %a' /etc/pkg-cacher/pkg-cacher.conf"); got != "root:pkg-cacher 640\n" {
		t.Errorf("pkg-cacher.conf is %q, want root:pkg-cacher 640: readable by pkg-cacher only", got)
	}
	sh("systemd-analyze verify --man=no pkg-cacher.service vzpkg-update-cache.service vzpkg-update-cache.timer")
	// vzpkg finds the installed template tree.
	if got := sh("vzpkg list"); strings.Count(got, "\n") < 50 || !strings.Contains(got, "debian-12-x86_64-minimal") {
		t.Errorf("vzpkg list in the container:\n%s", got)
	}
	if got := sh("vzpkg show-config debian-12-x86_64-minimal"); !strings.HasPrefix(got, "# debian-12-x86_64-minimal, from /usr/share/vzpkg/templates\n") {
		t.Errorf("vzpkg show-config in the container does not read /usr/share/vzpkg/templates:\n%s", got)
	}

	// The administrator lets it fetch from the host's cache, starts it and
	// points apt at it.
	sh("echo 'allowed_locations = " + upstream + "' >> /etc/pkg-cacher/pkg-cacher.conf")
	sh("echo 'Acquire::http::Proxy \"http://127.0.0.1:3142/\";' > /etc/apt/apt.conf.d/01proxy")
	sh("systemctl start pkg-cacher")
	pid := strings.TrimSpace(sh("systemctl show -P MainPID pkg-cacher"))
	if user := strings.TrimSpace(sh("stat -c %U /proc/" + pid)); user != "pkg-cacher" {
		t.Errorf("pkg-cacher runs as %q", user)
	}
	sh("apt-get update -q && apt-get install -y -q --no-install-recommends hello logrotate")
	if got := sh("hello"); got != "Hello, world!\n" {
		t.Errorf("hello says %q", got)
	}
	hello := func(u string) bool { return strings.Contains(u, "/hello_") }
	logs := &repotest.Cacher{Logs: filepath.Join(root, "var/log/pkg-cacher")}
	if n := logs.Misses(t, hello); n != 1 {
		t.Errorf("the container's pkg-cacher fetched hello's .deb %d times, want once", n)
	}
	if n := host.Misses(t, hello); n != 1 {
		t.Errorf("the host's pkg-cacher fetched hello's .deb %d times, want once", n)
	}

	// logrotate, with the packaged configuration, moves the log and
	// reloads: the same process goes on serving, into a new access.log.
	sh("logrotate -f /etc/logrotate.d/pkg-cacher && test -s /var/log/pkg-cacher/access.log.1")
	// SIGHUP is handled after systemctl reload returns: wait (at most 10 s)
	// for the new access.log.
	sh("for i in $(seq 100); do test -e /var/log/pkg-cacher/access.log && exit 0; sleep 0.1; done; " +
		"echo 'logrotate: no new access.log (no reload?)'; exit 1")
	sh("systemctl reload pkg-cacher")
	if got := strings.TrimSpace(sh("systemctl show -P MainPID pkg-cacher")); got != pid {
		t.Errorf("after reload pkg-cacher's pid is %s, was %s", got, pid)
	}
	sh("apt-get clean && apt-get install -y -q --reinstall hello")
	if log, _ := os.ReadFile(filepath.Join(logs.Logs, "access.log")); !regexp.MustCompile(` HIT 200 \d+ \S*/hello_`).Match(log) {
		t.Errorf("after reload the new access.log has no HIT of hello's .deb:\n%s", log)
	}
	if got := strings.TrimSpace(sh("systemctl is-active pkg-cacher")); got != "active" {
		t.Errorf("after reload pkg-cacher is %s", got)
	}

	// An upgrade restarts the running pkg-cacher and keeps the changed
	// configuration.
	sh("apt-get install -y -q ./root/" + filepath.Base(newer))
	if got := strings.TrimSpace(sh("systemctl is-active pkg-cacher")); got != "active" {
		t.Errorf("after the upgrade pkg-cacher is %s", got)
	}
	if got := strings.TrimSpace(sh("systemctl show -P MainPID pkg-cacher")); got == pid {
		t.Errorf("the upgrade did not restart pkg-cacher (pid %s)", pid)
	} else {
		pid = got
	}
	if conf := sh("cat /etc/pkg-cacher/pkg-cacher.conf"); !strings.Contains(conf, "allowed_locations = "+upstream) {
		t.Errorf("the upgrade lost the administrator's pkg-cacher.conf")
	}

	// Enabled by the administrator, then purged: nothing of it remains.
	sh("systemctl enable pkg-cacher.service vzpkg-update-cache.timer")
	sh("apt-get purge -y -q vzpkg2")
	fails("kill -0 " + pid)
	fails("getent passwd pkg-cacher")
	fails("getent group pkg-cacher")
	for _, p := range []string{"/usr/bin/pkg-cacher", "/usr/bin/vzpkg", "/usr/lib/systemd/system/pkg-cacher.service",
		"/etc/pkg-cacher", "/etc/vzpkg/vzpkg.conf", "/etc/logrotate.d/pkg-cacher", "/var/cache/pkg-cacher", "/var/log/pkg-cacher",
		"/usr/share/vzpkg", "/etc/systemd/system/multi-user.target.wants/pkg-cacher.service",
		"/etc/systemd/system/timers.target.wants/vzpkg-update-cache.timer"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			t.Errorf("%s remains after apt purge", p)
		}
	}
	if got := sh("systemctl list-unit-files --no-legend 'pkg-cacher*' 'vzpkg*' || true"); got != "" {
		t.Errorf("systemd still knows the units after purge:\n%s", got)
	}

	// The .rpm's scriptlets are the same scripts; run with rpm's
	// arguments (1: install; 0: removal), they make the user and its
	// directories and keep them on removal (rpm has no purge).
	rpmFile := build(t, packaging.RPM, "")
	for _, s := range []string{"POSTIN", "PREUN", "POSTUN"} {
		body := run(t, "rpm", "-qp", "--qf", "%{"+s+"}", rpmFile)
		if err := os.WriteFile(filepath.Join(root, "root", s), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sh("/root/POSTIN 1 && /root/PREUN 0 && /root/POSTUN 0")
	if got := sh("getent passwd pkg-cacher | cut -d: -f6,7; stat -c '%U %a' /var/cache/pkg-cacher /var/log/pkg-cacher"); got != "/var/cache/pkg-cacher:/usr/sbin/nologin\npkg-cacher 750\npkg-cacher 750\n" {
		t.Errorf("after the .rpm's scriptlets: %q", got)
	}
}
