package cachercli

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
	cmd, stderr, base := serveChild(t, "-c", conf)
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

// serveChild runs `pkg-cacher serve args...` on a free loopback port in a
// child process until the test ends, and waits until it answers at base.
func serveChild(t *testing.T, args ...string) (cmd *exec.Cmd, stderr *lockedBuffer, base string) {
	t.Helper()
	port := freePort(t)
	stderr = &lockedBuffer{}
	cmd = exec.Command(os.Args[0], append(append([]string{"serve"}, args...), "daemon_addr=127.0.0.1", fmt.Sprint("daemon_port=", port))...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	base = fmt.Sprintf("http://127.0.0.1:%d", port)
	waitUp(t, base)
	return cmd, stderr, base
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

// SIGHUP re-reads the configuration without dropping a download under way,
// refuses (and logs) a configuration with an error, and reopens the access
// log after logrotate renamed it.
func TestReloadOnSIGHUP(t *testing.T) {
	root := t.TempDir()
	big := make([]byte, 4<<20)
	rand.Read(big)
	os.MkdirAll(filepath.Join(root, "pool"), 0o755)
	os.WriteFile(filepath.Join(root, "pool", "big.deb"), big, 0o644)
	os.WriteFile(filepath.Join(root, "pool", "small.deb"), []byte("small"), 0o644)
	up := repotest.NewUpstream(t, root)
	halfway, release := make(chan struct{}), make(chan struct{})
	up.SetHandler(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.URL.Path != "/pool/big.deb" {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		w.Write(big[:len(big)/2])
		w.(http.Flusher).Flush()
		close(halfway)
		<-release
		w.Write(big[len(big)/2:])
	})
	dir := t.TempDir()
	conf := filepath.Join(dir, "pkg-cacher.conf")
	write := func(acl string) {
		os.WriteFile(conf, []byte(fmt.Sprintf("cache_dir = %s/cache\nlogdir = %s/log\nallowed_locations = %s\npath_map = local %s\nallowed_hosts = %s\n", dir, dir, up.HostPort(), up.HostPort(), acl)), 0o644)
	}
	write("127.0.0.0/8")
	cmd, stderr, base := serveChild(t, "-c", conf)
	hup := func(want string) {
		t.Helper()
		n := strings.Count(stderr.String(), want)
		cmd.Process.Signal(syscall.SIGHUP)
		for deadline := time.Now().Add(10 * time.Second); strings.Count(stderr.String(), want) == n; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log 10 s after SIGHUP:\n%s", want, stderr.String())
			}
		}
	}
	status := func(from, path string) int {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 30 * time.Second}
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status("127.0.0.2", "/local/pool/small.deb"); got != 200 {
		t.Fatalf("before the reload 127.0.0.2 got %d, want 200", got)
	}

	download := make(chan []byte)
	go func() {
		resp, err := http.Get(base + "/local/pool/big.deb")
		if err != nil {
			download <- nil
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		download <- b
	}()
	<-halfway
	write("127.0.0.1")
	hup("configuration reloaded")
	if got := status("127.0.0.2", "/local/pool/small.deb"); got != http.StatusForbidden {
		t.Errorf("after the reload 127.0.0.2 got %d, want 403", got)
	}
	close(release)
	if b := <-download; !bytes.Equal(b, big) {
		t.Errorf("the download under way during the reload got %d bytes, want all %d", len(b), len(big))
	}

	os.WriteFile(conf, []byte("cache_dir = /x\nallowed_hosts = bogus\n"), 0o644)
	hup("configuration not reloaded")
	if got := status("127.0.0.2", "/local/pool/small.deb"); got != http.StatusForbidden {
		t.Errorf("after a refused reload 127.0.0.2 got %d, want the running configuration's 403", got)
	}

	logs := filepath.Join(dir, "log")
	if err := os.Rename(filepath.Join(logs, "access.log"), filepath.Join(logs, "access.log.1")); err != nil {
		t.Fatal(err)
	}
	hup("configuration not reloaded") // the access log is reopened all the same
	status("127.0.0.1", "/local/pool/small.deb")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if b, _ := os.ReadFile(filepath.Join(logs, "access.log")); strings.Contains(string(b), "/local/pool/small.deb") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no new access.log with the request after SIGHUP")
		}
	}
}
