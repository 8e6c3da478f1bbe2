package cachercli

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"vzpkg2/internal/repotest"
)

// originalConf is the original pkg-cacher's shipped pkg-cacher.conf with
// every key it knows set, pointed at the test's directories and upstream.
func originalConf(dir, upstream string) string {
	return fmt.Sprintf(`# This is the config file for pkg-cacher.
cache_dir=%[1]s/cache
admin_email=root@localhost
daemon_port=3142
group=root
user=root
# daemon_addr=localhost
allowed_hosts=*
denied_hosts=
allowed_hosts_6=fec0::/16
denied_hosts_6=
generate_reports=1
clean_cache=0
offline_mode=0
logdir=%[1]s/log
expire_hours=0
#http_proxy=proxy.example.com:8080
use_proxy=0
#http_proxy_auth=proxyuser:proxypass
use_proxy_auth=0
#interface=
limit=0
debug=0
#cgi_advise_to_use = Please use http://cacheserver:3142/ as pkg-cacher access URL
logfile=%[1]s/log/old-access.log
errorfile=%[1]s/log/old-error.log
pidfile=%[1]s/pkg-cacher.pid
path_map = fedora download.fedora.redhat.com/pub/fedora/linux ; centos mirror.centos.org/centos ; debian %[2]s ; debian-security security.debian.org/debian-security ; ubuntu archive.ubuntu.com/ubuntu ; openvz repo.opensource-sw.net
`, dir, upstream)
}

// The original pkg-cacher's config file starts pkg-cacher as it is: each
// key without an effect here is named in a warning, and apt works through
// its path_map name and through the /pkg-cacher/ prefix of the original's
// web-server mode.
func TestOriginalConfig(t *testing.T) {
	root := t.TempDir()
	repo := repotest.BuildAptRepo(t, root, "stable", []repotest.Deb{{Name: "hello", Version: "1.0-1", Size: 4 << 10}})
	up := repotest.NewUpstream(t, root)
	dir := t.TempDir()
	conf := filepath.Join(dir, "pkg-cacher.conf")
	if err := os.WriteFile(conf, []byte(originalConf(dir, up.HostPort())), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	var stderr lockedBuffer
	cmd := exec.Command(os.Args[0], "serve", "-c", conf, "daemon_addr=127.0.0.1", fmt.Sprint("daemon_port=", port))
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitUp(t, base)
	for _, key := range []string{"generate_reports", "logfile", "errorfile"} {
		if !strings.Contains(stderr.String(), conf+":") || !strings.Contains(stderr.String(), key+" has no effect") {
			t.Errorf("no warning names %s:\n%s", key, stderr.String())
		}
	}
	if n := strings.Count(stderr.String(), "has no effect"); n != 3 {
		t.Errorf("%d warnings of keys without effect, want 3:\n%s", n, stderr.String())
	}
	if b, err := os.ReadFile(filepath.Join(dir, "pkg-cacher.pid")); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(cmd.Process.Pid) {
		t.Errorf("pidfile holds %q (%v), want %d", b, err, cmd.Process.Pid)
	}
	for _, prefix := range []string{"/debian", "/pkg-cacher/debian"} {
		apt := repotest.NewAptClient(t, repo.SourcesLine(base+prefix), "")
		apt.Update(t)
		apt.DownloadOnly(t, "hello")
		if len(apt.Archives(t)) != 1 {
			t.Errorf("through %s apt downloaded %v, want hello", prefix, apt.Archives(t))
		}
	}
	if n := up.CountSuffix(".deb"); n != 1 {
		t.Errorf("the upstream got %d package requests, want 1 (both forms share the cache)", n)
	}
}

// lockedBuffer is a bytes.Buffer a child's output is copied into while the
// test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitUp waits until a pkg-cacher answers at base.
func waitUp(t *testing.T, base string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(base + "/"); err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("pkg-cacher does not answer")
		}
	}
}

// Started as root with user=, pkg-cacher binds port 3142, then runs as the
// user; a cache directory the user cannot write is a clear error at start.
func TestUserDropsPrivileges(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	dir, err := os.MkdirTemp("", "pkg-cacher-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cacheDir, logDir := filepath.Join(dir, "cache"), filepath.Join(dir, "log")
	for _, d := range []string{cacheDir, logDir} {
		os.MkdirAll(d, 0o755)
	}
	os.Chmod(dir, 0o755)
	run := func() (*exec.Cmd, *lockedBuffer) {
		var stderr lockedBuffer
		cmd := exec.Command(os.Args[0], "serve", "user=nobody", "cache_dir="+cacheDir, "logdir="+logDir, "daemon_addr=127.0.0.1")
		cmd.Env = append(os.Environ(), childEnv+"=1")
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd, &stderr
	}

	// Owned by root: nobody cannot write it.
	cmd, stderr := run()
	if err := cmd.Wait(); err == nil || !strings.Contains(stderr.String(), "runs as user nobody") {
		t.Fatalf("with a cache directory nobody cannot write: %v, %q; want a clear error at start", err, stderr.String())
	}

	for _, d := range []string{cacheDir, logDir} {
		os.Chown(d, uid, gid)
	}
	cmd, stderr = run()
	waitUp(t, "http://127.0.0.1:3142")
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if f := strings.Fields(l); len(f) == 5 && (f[0] == "Uid:" || f[0] == "Gid:") {
			want := strconv.Itoa(uid)
			if f[0] == "Gid:" {
				want = strconv.Itoa(gid)
			}
			if f[1] != want || f[2] != want || f[3] != want {
				t.Errorf("pkg-cacher on port 3142 runs with %s, want all %s (stderr: %s)", l, want, stderr.String())
			}
		}
	}
}
