package cacheserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"vzpkg2/internal/cacheconf"
	"vzpkg2/internal/repotest"
)

// cacher is a pkg-cacher running in the test process on a free loopback port.
type cacher struct {
	addr string // host:port
	dir  string // cache_dir
	logs string // logdir
}

// startCacher starts pkg-cacher allowing the upstream at upstreamHostPort,
// with path_map "local" pointing at it; settings are key=value overrides.
func startCacher(t *testing.T, upstreamHostPort string, dir string, settings ...string) *cacher {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startCacherOn(t, ln, upstreamHostPort, dir, settings...)
}

// startCacherOn is startCacher serving on ln.
func startCacherOn(t *testing.T, ln net.Listener, upstreamHostPort string, dir string, settings ...string) *cacher {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	c := &cacher{dir: filepath.Join(dir, "cache"), logs: filepath.Join(dir, "log")}
	cfg := testConfig(t, upstreamHostPort, dir, settings...)
	var logBuf syncBuffer
	srv, err := New(cfg, slog.New(slog.NewTextHandler(&logBuf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	c.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("pkg-cacher log:\n%s", logBuf.String())
		}
	})
	return c
}

// testConfig is the configuration of a pkg-cacher with its cache and logs
// in dir (a new temporary directory when empty), allowing the upstream at
// upstreamHostPort, with path_map "local" pointing at it; settings are
// key=value overrides.
func testConfig(t *testing.T, upstreamHostPort, dir string, settings ...string) *cacheconf.Config {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg, err := cacheconf.Load("", append([]string{
		"cache_dir=" + filepath.Join(dir, "cache"), "logdir=" + filepath.Join(dir, "log"),
		"allowed_locations=" + upstreamHostPort,
		"path_map=local " + upstreamHostPort,
	}, settings...))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func (c *cacher) url(path string) string { return "http://" + c.addr + path }

// accessLog returns the cache statuses logged so far, one per request.
func (c *cacher) accessLog(t *testing.T) []string {
	b, err := os.ReadFile(filepath.Join(c.logs, "access.log"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(l); len(f) == 6 {
			out = append(out, f[2]+" "+f[3]+" "+f[5])
		}
	}
	return out
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAptGetThroughEveryForm runs real apt-get clients through pkg-cacher in
// the proxy, URL-prefix and path_map forms: they get the upstream's exact
// packages, and a second client causes no upstream package request.
func TestAptGetThroughEveryForm(t *testing.T) {
	root := t.TempDir()
	repo := repotest.BuildAptRepo(t, root, "stable", []repotest.Deb{
		{Name: "app", Version: "1.0-1", Depends: []string{"libbig (>= 2.0)"}, Size: 10 << 10},
		{Name: "libbig", Version: "2.1-1", Size: 6 << 20},
		{Name: "tool", Version: "0.3+git1~beta-2", Size: 2 << 10},
		{Name: "unused", Version: "1", Size: 1 << 10},
	})
	up := repotest.NewUpstream(t, root)
	for _, form := range []struct {
		name    string
		sources func(c *cacher) string
		aptConf func(c *cacher) string
	}{
		{"proxy", func(*cacher) string { return repo.SourcesLine(up.URL()) },
			func(c *cacher) string { return `Acquire::http::Proxy "http://` + c.addr + `/";` }},
		{"prefix", func(c *cacher) string { return repo.SourcesLine(c.url("/" + up.HostPort())) },
			func(*cacher) string { return "" }},
		{"path_map", func(c *cacher) string { return repo.SourcesLine(c.url("/local")) },
			func(*cacher) string { return "" }},
	} {
		t.Run(form.name, func(t *testing.T) {
			c := startCacher(t, up.HostPort(), "")
			up.Reset()
			for i := range 2 {
				apt := repotest.NewAptClient(t, form.sources(c), form.aptConf(c))
				apt.Update(t)
				apt.DownloadOnly(t, "app", "tool")
				got := apt.Archives(t)
				if len(got) != 3 {
					t.Fatalf("client %d downloaded %v, want app, libbig and tool", i+1, got)
				}
				for _, name := range []string{"app", "libbig", "tool"} {
					want, err := os.ReadFile(filepath.Join(repo.Root, repo.Debs[name]))
					if err != nil {
						t.Fatal(err)
					}
					have, err := os.ReadFile(got[filepath.Base(repo.Debs[name])])
					if err != nil || !bytes.Equal(have, want) {
						t.Errorf("client %d: %s differs from the upstream's file (%v)", i+1, name, err)
					}
				}
				if n := up.CountSuffix(".deb"); n != 3 {
					t.Errorf("after client %d the upstream served %d .deb requests, want 3 (one per package, the second client none): %v",
						i+1, n, up.Requests())
				}
			}
			log := strings.Join(c.accessLog(t), "\n")
			for _, want := range []string{"MISS 200", "HIT 200"} {
				if !strings.Contains(log, want) {
					t.Errorf("access log has no %q record:\n%s", want, log)
				}
			}
		})
	}
}

// writeRandom writes n random bytes to root/name and returns them.
func writeRandom(t *testing.T, root, name string, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	if err := os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// gated serves files, but for path stops after half the body until release
// is closed, and reports through halfway when it got there.
func gated(path string, halfway chan<- struct{}, release <-chan struct{}) repotest.Middleware {
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.URL.Path != path {
			next.ServeHTTP(w, r)
			return
		}
		rec := &bodyCapture{header: http.Header{}}
		next.ServeHTTP(rec, r)
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.code)
		body := rec.body.Bytes()
		half := len(body) / 2
		w.Write(body[:half])
		w.(http.Flusher).Flush()
		halfway <- struct{}{}
		<-release
		w.Write(body[half:])
	}
}

type bodyCapture struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *bodyCapture) Header() http.Header         { return b.header }
func (b *bodyCapture) WriteHeader(code int)        { b.code = code }
func (b *bodyCapture) Write(p []byte) (int, error) { return b.body.Write(p) }

func TestConcurrentClientsShareOneFill(t *testing.T) {
	root := t.TempDir()
	const path = "/pool/main/b/big/big_1.0_amd64.deb"
	want := writeRandom(t, root, path, 8<<20)
	up := repotest.NewUpstream(t, root)
	halfway, release := make(chan struct{}, 1), make(chan struct{})
	up.SetHandler(gated(path, halfway, release))
	c := startCacher(t, up.HostPort(), "")
	url := c.url("/" + up.HostPort() + path)

	const clients = 20
	bodies := make([][]byte, clients)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			resp, err := http.Get(url)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			bodies[i], errs[i] = io.ReadAll(resp.Body)
		})
	}
	select {
	case <-halfway:
	case <-time.After(30 * time.Second):
		t.Fatal("upstream never got the request")
	}
	// The upstream has sent half and waits: a client joining now must get
	// its first bytes before the download ends.
	late, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 1<<20)
	n, err := io.ReadAtLeast(late.Body, first, len(first))
	if err != nil || !bytes.Equal(first[:n], want[:n]) {
		t.Fatalf("late client read %d bytes (%v) while the download was under way, want the first MiB", n, err)
	}
	close(release)
	rest, err := io.ReadAll(late.Body)
	late.Body.Close()
	if err != nil || !bytes.Equal(append(first[:n], rest...), want) {
		t.Errorf("late client: got %d bytes (%v), want the whole %d-byte file", n+len(rest), err, len(want))
	}
	wg.Wait()
	for i := range clients {
		if errs[i] != nil || !bytes.Equal(bodies[i], want) {
			t.Errorf("client %d: got %d bytes, err %v; want the file's %d bytes", i, len(bodies[i]), errs[i], len(want))
		}
	}
	if n := up.Count(path); n != 1 {
		t.Errorf("upstream got %d requests for the file, want exactly 1", n)
	}
}

// breakMidBody sends a Content-Length and half the body of path, then drops
// the connection.
func breakMidBody(path string, chunked bool) repotest.Middleware {
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.URL.Path != path {
			next.ServeHTTP(w, r)
			return
		}
		rec := &bodyCapture{header: http.Header{}}
		next.ServeHTTP(rec, r)
		if !chunked {
			w.Header().Set("Content-Length", rec.header.Get("Content-Length"))
		}
		w.WriteHeader(http.StatusOK)
		w.Write(rec.body.Bytes()[:rec.body.Len()/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
}

func TestUpstreamBreaksMidBody(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			root := t.TempDir()
			const path = "/pool/main/b/big/big_1.0_amd64.deb"
			want := writeRandom(t, root, path, 3<<20)
			up := repotest.NewUpstream(t, root)
			up.SetHandler(breakMidBody(path, chunked))
			c := startCacher(t, up.HostPort(), "")
			url := c.url("/" + up.HostPort() + path)

			resp, err := http.Get(url)
			if err == nil {
				var b []byte
				b, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil {
					t.Fatalf("client got a complete-looking response of %d bytes (status %d) from a broken upstream", len(b), resp.StatusCode)
				}
			}
			if objects := countFiles(t, filepath.Join(c.dir, "blobs")); objects != 0 {
				t.Errorf("store holds %d files after a failed fill, want 0", objects)
			}
			up.SetHandler(nil)
			resp, err = http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || !bytes.Equal(b, want) {
				t.Errorf("after the upstream healed: got %d bytes (%v), want %d", len(b), err, len(want))
			}
			if n := up.Count(path); n != 2 {
				t.Errorf("upstream got %d requests, want 2 (the broken one and the retry)", n)
			}
		})
	}
}

func countFiles(t *testing.T, dir string) int {
	n, _ := dirBytes(t, dir)
	return n
}

func get(t *testing.T, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// With volatile_ttl=0 every request for an index revalidates; packages
// never do.
func TestRevalidation(t *testing.T) {
	root := t.TempDir()
	writeRandom(t, root, "/dists/stable/InRelease", 1000)
	writeRandom(t, root, "/pool/a_1_all.deb", 1000)
	up := repotest.NewUpstream(t, root)
	c := startCacher(t, up.HostPort(), "", "volatile_ttl=0")
	index, deb := c.url("/local/dists/stable/InRelease"), c.url("/local/pool/a_1_all.deb")

	for i, step := range []struct {
		url, wantCache string
		change         bool
	}{
		{index, "MISS", false},
		{index, "REVALIDATED", false},
		{index, "EXPIRED", true},
		{index, "REVALIDATED", false},
		{deb, "MISS", false},
		{deb, "HIT", false},
	} {
		var want []byte
		if step.change {
			time.Sleep(1100 * time.Millisecond) // Last-Modified has one-second resolution
			want = writeRandom(t, root, "/dists/stable/InRelease", 1200)
		}
		resp, body := get(t, step.url)
		if got := resp.Header.Get("X-Cache"); got != step.wantCache {
			t.Errorf("step %d: GET %s: got X-Cache %s, want %s (upstream: %v)", i, step.url, got, step.wantCache, up.Requests())
		}
		if want != nil && !bytes.Equal(body, want) {
			t.Errorf("GET %s after the upstream changed: got the old body", step.url)
		}
	}
	if n := up.Count("/pool/a_1_all.deb"); n != 1 {
		t.Errorf("upstream got %d requests for the package, want 1", n)
	}
	if n := up.Count("/dists/stable/InRelease"); n != 4 {
		t.Errorf("upstream got %d requests for the index, want 4 (1 fetch + 3 conditional)", n)
	}
}

func TestOfflineModeAfterRestart(t *testing.T) {
	root := t.TempDir()
	want := writeRandom(t, root, "/pool/a_1_all.deb", 5000)
	writeRandom(t, root, "/pool/b_1_all.deb", 5000)
	up := repotest.NewUpstream(t, root)
	dir := t.TempDir()
	func() {
		t.Run("fill", func(t *testing.T) {
			c := startCacher(t, up.HostPort(), dir)
			get(t, c.url("/local/pool/a_1_all.deb"))
		})
	}()
	up.Reset()
	c := startCacher(t, up.HostPort(), dir, "offline_mode=1", "volatile_ttl=0")
	resp, body := get(t, c.url("/local/pool/a_1_all.deb"))
	if resp.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Errorf("cached file in offline mode: got %d, %d bytes", resp.StatusCode, len(body))
	}
	resp, body = get(t, c.url("/local/pool/b_1_all.deb"))
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "offline_mode") {
		t.Errorf("uncached file in offline mode: got %d %q, want 503 naming offline_mode", resp.StatusCode, body)
	}
	if r := up.Requests(); len(r) != 0 {
		t.Errorf("offline pkg-cacher contacted the upstream: %v", r)
	}
}

func TestClientProtocol(t *testing.T) {
	root := t.TempDir()
	want := writeRandom(t, root, "/pool/a_1_all.deb", 100_000)
	up := repotest.NewUpstream(t, root)
	c := startCacher(t, up.HostPort(), "")
	url := c.url("/local/pool/a_1_all.deb")
	get(t, url) // fill

	t.Run("HEAD", func(t *testing.T) {
		resp, err := http.Head(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ContentLength != int64(len(want)) {
			t.Errorf("got %d with Content-Length %d, want 200 with %d", resp.StatusCode, resp.ContentLength, len(want))
		}
	})
	t.Run("If-Modified-Since", func(t *testing.T) {
		resp, _ := get(t, url)
		resp2, body := get(t, url, "If-Modified-Since", resp.Header.Get("Last-Modified"))
		if resp2.StatusCode != http.StatusNotModified || len(body) != 0 {
			t.Errorf("got %d with %d bytes, want 304 without body", resp2.StatusCode, len(body))
		}
	})
	t.Run("Range", func(t *testing.T) {
		resp, body := get(t, url, "Range", "bytes=1000-1999")
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, want[1000:2000]) ||
			resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 1000-1999/%d", len(want)) {
			t.Errorf("got %d %q with %d bytes, want 206 of bytes 1000-1999", resp.StatusCode, resp.Header.Get("Content-Range"), len(body))
		}
		resp, body = get(t, url, "Range", "bytes=99000-")
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, want[99000:]) {
			t.Errorf("open-ended range: got %d with %d bytes", resp.StatusCode, len(body))
		}
	})
	t.Run("pipelined in order", func(t *testing.T) {
		conn, err := net.Dial("tcp", c.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		paths := []string{"/local/pool/a_1_all.deb", "/local/pool/missing.deb", "/local/pool/a_1_all.deb"}
		var reqs strings.Builder
		for _, p := range paths {
			fmt.Fprintf(&reqs, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", p, c.addr)
		}
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		conn.Write([]byte(reqs.String()))
		br := bufio.NewReader(conn)
		for i, wantCode := range []int{200, 404, 200} {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != wantCode || (wantCode == 200 && !bytes.Equal(b, want)) {
				t.Errorf("response %d: got %d with %d bytes, want %d", i, resp.StatusCode, len(b), wantCode)
			}
		}
	})
	t.Run("usage page is apt-cacher-ng compatible", func(t *testing.T) {
		conn, err := net.Dial("tcp", c.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", c.addr)
		status, _ := bufio.NewReader(conn).ReadString('\n')
		if status != "HTTP/1.1 406 Usage Information\r\n" {
			t.Errorf("got status line %q, want apt-cacher-ng's 406 Usage Information", status)
		}
		_, body := get(t, c.url("/"))
		for _, want := range []string{"Acquire::http::Proxy", "proxy=http://", "HTTPS///", "/local", "baseurl=http://" + c.addr + "/HTTPS///"} {
			if !strings.Contains(string(body), want) {
				t.Errorf("usage page does not mention %q", want)
			}
		}
	})
	t.Run("refusals", func(t *testing.T) {
		before := len(up.Requests())
		for _, tc := range []struct {
			method, target string
			want           int
		}{
			{"GET", "/not.allowed.example/x.deb", http.StatusForbidden},
			{"GET", "http://not.allowed.example/x.deb", http.StatusForbidden},
			{"GET", "/local/../etc/passwd", http.StatusBadRequest},
			{"GET", "/local/%2e%2e/etc/passwd", http.StatusBadRequest},
			{"GET", "/local/a%00b", http.StatusBadRequest},
			{"CONNECT", "deb.debian.org:443", http.StatusMethodNotAllowed},
			{"POST", "/local/pool/a_1_all.deb", http.StatusMethodNotAllowed},
		} {
			conn, err := net.Dial("tcp", c.addr)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n\r\n", tc.method, tc.target, c.addr)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			conn.Close()
			if err != nil {
				t.Fatalf("%s %s: %v", tc.method, tc.target, err)
			}
			if resp.StatusCode != tc.want {
				t.Errorf("%s %s: got %d, want %d", tc.method, tc.target, resp.StatusCode, tc.want)
			}
		}
		if r := up.Requests(); len(r) != before {
			t.Errorf("refused requests reached the upstream: %v", r[before:])
		}
	})
}

// getFrom GETs url from the local address src.
func getFrom(t *testing.T, src, url string) (*http.Response, []byte) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	tr := &http.Transport{DialContext: d.DialContext}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// The access lists as the original documents them, for clients on other
// loopback addresses and on ::1: allowed, or refused with 403.
func TestAccessLists(t *testing.T) {
	root := t.TempDir()
	writeRandom(t, root, "/pool/a_1_all.deb", 1000)
	up := repotest.NewUpstream(t, root)
	v6, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	v6.Close()
	for _, tc := range []struct {
		settings []string
		want     map[string]int // client address: status
	}{
		{[]string{"allowed_hosts=127.0.0.2", "allowed_hosts_6="},
			map[string]int{"127.0.0.1": 200, "127.0.0.2": 200, "127.0.0.3": 403, "::1": 403}},
		{[]string{"allowed_hosts=127.0.0.0/8", "denied_hosts=127.0.0.2-127.0.0.3", "allowed_hosts_6=::1"},
			map[string]int{"127.0.0.1": 200, "127.0.0.2": 403, "127.0.0.3": 403, "127.0.0.4": 200, "::1": 200}},
		{[]string{"allowed_hosts=*", "allowed_hosts_6=fd00::/8"},
			map[string]int{"127.0.0.9": 200, "::1": 403}},
	} {
		t.Run(strings.Join(tc.settings, " "), func(t *testing.T) {
			ln4, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ln6, err := net.Listen("tcp", "[::1]:0")
			if err != nil {
				t.Fatal(err)
			}
			c4 := startCacherOn(t, ln4, up.HostPort(), "", tc.settings...)
			c6 := startCacherOn(t, ln6, up.HostPort(), "", tc.settings...)
			for client, want := range tc.want {
				c := c4
				if strings.Contains(client, ":") {
					c = c6
				}
				resp, body := getFrom(t, client, c.url("/local/pool/a_1_all.deb"))
				if resp.StatusCode != want {
					t.Errorf("client %s: got %d %q, want %d", client, resp.StatusCode, body, want)
				}
			}
		})
	}
}
