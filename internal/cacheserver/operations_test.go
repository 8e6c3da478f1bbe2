package cacheserver

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"vzpkg2/internal/repotest"
)

// startSquid starts a squid on a free loopback port that forwards without
// caching, logging to its access.log, and returns its host:port and log.
func startSquid(t *testing.T) (string, string) {
	t.Helper()
	squid, err := exec.LookPath("squid")
	if err != nil {
		t.Skip("squid is not installed (scripts/setup.sh installs it)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	// squid runs as its own user (proxy): t.TempDir's parent is root's alone.
	dir, err := os.MkdirTemp("", "squid-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	conf := filepath.Join(dir, "squid.conf")
	log := filepath.Join(dir, "access.log")
	os.WriteFile(conf, []byte(fmt.Sprintf(`http_port %s
pid_filename %s/squid.pid
cache deny all
access_log stdio:%s
cache_log %s/cache.log
cache_store_log none
coredump_dir %s
http_access allow localhost
http_access deny all
shutdown_lifetime 0 seconds
`, addr, dir, log, dir, dir)), 0o644)
	cmd := exec.Command(squid, "-N", "-f", conf)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, log
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "cache.log"))
			t.Fatalf("squid did not start:\n%s", b)
		}
	}
}

// With use_proxy=1 apt's packages come through the http_proxy (squid's log
// shows the upstream requests); with use_proxy=0 they do not.
func TestUpstreamProxy(t *testing.T) {
	proxyAddr, proxyLog := startSquid(t)
	root := t.TempDir()
	repo := repotest.BuildAptRepo(t, root, "stable", []repotest.Deb{{Name: "hello", Version: "1.0-1", Size: 4 << 10}})
	up := repotest.NewUpstream(t, root)
	for _, use := range []string{"1", "0"} {
		t.Run("use_proxy="+use, func(t *testing.T) {
			before, _ := os.ReadFile(proxyLog)
			c := startCacher(t, up.HostPort(), "", "http_proxy="+proxyAddr, "use_proxy="+use)
			apt := repotest.NewAptClient(t, repo.SourcesLine(c.url("/local")), "")
			apt.Update(t)
			apt.DownloadOnly(t, "hello")
			var log []byte
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				b, _ := os.ReadFile(proxyLog)
				if log = b[len(before):]; use == "0" || strings.Contains(string(log), ".deb") {
					break
				}
			}
			through := strings.Contains(string(log), "http://"+up.HostPort()+"/"+repo.Debs["hello"])
			if through != (use == "1") {
				t.Errorf("use_proxy=%s: the package went through the proxy: %v; squid's log:\n%s", use, through, log)
			}
		})
	}
}

// limit caps the bytes a second of all fills together: a 5 MB fill at 500k
// takes at least 9 s, and two 2.5 MB fills at once share the rate. (Timed
// at the client, which gets the bytes as they come from upstream: at the
// upstream, the kernel's socket buffers take the last megabytes at once.)
func TestLimit(t *testing.T) {
	root := t.TempDir()
	writeRandom(t, root, "/pool/one.deb", 5_000_000)
	writeRandom(t, root, "/pool/a.deb", 2_500_000)
	writeRandom(t, root, "/pool/b.deb", 2_500_000)
	up := repotest.NewUpstream(t, root)
	c := startCacher(t, up.HostPort(), "", "limit=500k")
	timed := func(f string) time.Duration {
		start := time.Now()
		if resp, body := get(t, c.url("/local/pool/"+f+".deb")); resp.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("%s: got %d with %d bytes", f, resp.StatusCode, len(body))
		}
		return time.Since(start)
	}
	if d := timed("one"); d < 9*time.Second {
		t.Errorf("a 5 MB fill took %v with limit=500k, want at least 9 s", d.Round(100*time.Millisecond))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	took := map[string]time.Duration{}
	for _, f := range []string{"a", "b"} {
		wg.Go(func() {
			d := timed(f)
			mu.Lock()
			took[f] = d
			mu.Unlock()
		})
	}
	wg.Wait()
	for f, d := range took {
		if d < 9*time.Second {
			t.Errorf("%s.deb (2.5 MB, while another 2.5 MB shares the limit) took %v, want at least 9 s", f, d.Round(100*time.Millisecond))
		}
	}
}
