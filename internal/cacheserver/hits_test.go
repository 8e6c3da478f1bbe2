package cacheserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"vzpkg2/internal/cacheconf"
	"vzpkg2/internal/hitpath"
	"vzpkg2/internal/repotest"
)

// answer is what a request should get: a status and a body (any body, for
// an error with body nil); head marks the answer to a HEAD request.
type answer struct {
	code int
	body []byte
	head bool
}

// exchange writes raw to a new connection to addr and reads one response
// for each of want, checking its status and body. It returns the responses
// and the connection, with its reader, for what follows.
func exchange(t *testing.T, addr, raw string, want ...answer) ([]*http.Response, net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	var resps []*http.Response
	for i, w := range want {
		req := &http.Request{Method: http.MethodGet}
		if w.head {
			req.Method = http.MethodHead
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		anyBody := w.body == nil && w.code >= 400
		if err != nil || resp.StatusCode != w.code || !anyBody && !bytes.Equal(b, w.body) {
			t.Fatalf("response %d: %s with %d bytes (%v); want %d with %d bytes", i, resp.Status, len(b), err, w.code, len(w.body))
		}
		resps = append(resps, resp)
	}
	return resps, conn, br
}

// TestHitPathAndNetHTTPAgree sends, on one connection and pipelined, cached
// files in the forms apt, dnf and curl ask for them (answered on the hit
// path), then a range (which goes to net/http with the connection), then the
// first request again: every answer is right and in order, and a hit has
// the same headers whichever server part answered it.
func TestHitPathAndNetHTTPAgree(t *testing.T) {
	root := t.TempDir()
	small := writeRandom(t, root, "/pool/main/s/small_1_all.deb", 10_000)
	big := writeRandom(t, root, "/pool/main/b/big_1_amd64.deb", 300_000)
	up := repotest.NewUpstream(t, root)
	c := startCacher(t, up.HostPort(), "")
	get(t, c.url("/local/pool/main/s/small_1_all.deb"))
	get(t, c.url("/local/pool/main/b/big_1_amd64.deb"))
	proxyForm := "http://" + up.HostPort() + "/pool/main/s/small_1_all.deb"
	get(t, c.url("/"+up.HostPort()+"/pool/main/s/small_1_all.deb")) // fills the host's key

	host := "Host: " + c.addr + "\r\n"
	raw := "GET /local/pool/main/s/small_1_all.deb HTTP/1.1\r\n" + host + "\r\n" +
		"GET " + proxyForm + " HTTP/1.1\r\nHost: " + up.HostPort() + "\r\nUser-Agent: Debian APT-HTTP/1.3 (2.6.1)\r\n\r\n" +
		"HEAD /local/pool/main/s/small_1_all.deb HTTP/1.1\r\n" + host + "\r\n" +
		"GET /local/pool/main/b/big_1_amd64.deb HTTP/1.1\r\n" + host + "Accept: */*\r\nUser-Agent: libdnf\r\nCache-Control: no-cache\r\nPragma: no-cache\r\n\r\n" +
		"GET /local/pool/main/s/small_1_all.deb HTTP/1.1\r\n" + host + "Connection: keep-alive\r\nProxy-Connection: Keep-Alive\r\n\r\n" +
		"GET /local/pool/main/s/small_1_all.deb HTTP/1.1\r\n" + host + "Range: bytes=100-199\r\n\r\n" +
		"GET /local/pool/main/s/small_1_all.deb HTTP/1.1\r\n" + host + "\r\n"
	resps, _, _ := exchange(t, c.addr, raw,
		answer{200, small, false}, answer{200, small, false}, answer{200, nil, true}, answer{200, big, false}, answer{200, small, false},
		answer{206, small[100:200], false}, answer{200, small, false})
	for i, r := range resps {
		if i != 5 && r.Header.Get("X-Cache") != "HIT" {
			t.Errorf("response %d: X-Cache %q, want HIT", i, r.Header.Get("X-Cache"))
		}
	}
	if r := resps[2]; r.ContentLength != int64(len(small)) {
		t.Errorf("HEAD: Content-Length %d, want %d", r.ContentLength, len(small))
	}
	hit, served := resps[0].Header.Clone(), resps[6].Header.Clone()
	hit.Del("Date")
	served.Del("Date")
	if !equalHeaders(hit, served) {
		t.Errorf("a hit's headers depend on who answered it:\nfirst request: %v\nafter the range: %v", hit, served)
	}
	s, b := "HIT 200 /local/pool/main/s/small_1_all.deb", "HIT 200 /local/pool/main/b/big_1_amd64.deb"
	if got := c.accessLog(t); len(got) != 3+7 || !slices.Equal(got[3:], []string{s, s, s, b, s, "HIT 206 /local/pool/main/s/small_1_all.deb", s}) {
		t.Errorf("access log:\n%s", strings.Join(got, "\n"))
	}
}

func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// TestHitPathLeavesTheRestToNetHTTP sends cached files in requests the hit
// path must not answer itself; each gets the answer net/http gives.
func TestHitPathLeavesTheRestToNetHTTP(t *testing.T) {
	root := t.TempDir()
	small := writeRandom(t, root, "/pool/main/s/small_1_all.deb", 10_000)
	up := repotest.NewUpstream(t, root)
	c := startCacher(t, up.HostPort(), "")
	get(t, c.url("/local/pool/main/s/small_1_all.deb"))
	resp, _ := get(t, c.url("/local/pool/main/s/small_1_all.deb"))
	etag := resp.Header.Get("Etag")
	const path = "/local/pool/main/s/small_1_all.deb"
	host := "Host: " + c.addr + "\r\n"
	for _, tc := range []struct {
		name, raw string
		want      answer
		closes    bool // the server closes the connection after the answer
	}{
		{"HTTP/1.0", "GET " + path + " HTTP/1.0\r\n\r\n", answer{200, small, false}, true},
		{"bare LF line ends", "GET " + path + " HTTP/1.1\nHost: " + c.addr + "\n\n", answer{200, small, false}, false},
		{"no Host", "GET " + path + " HTTP/1.1\r\n\r\n", answer{400, nil, false}, true},
		{"two Hosts", "GET " + path + " HTTP/1.1\r\n" + host + host + "\r\n", answer{400, nil, false}, true},
		{"head longer than the hit path's buffer", "GET " + path + " HTTP/1.1\r\n" + host + "X-Long: " + strings.Repeat("x", 6000) + "\r\n\r\n", answer{200, small, false}, false},
		{"If-None-Match", "GET " + path + " HTTP/1.1\r\n" + host + "If-None-Match: " + etag + "\r\n\r\n", answer{304, nil, false}, false},
		{"POST", "POST " + path + " HTTP/1.1\r\n" + host + "Content-Length: 0\r\n\r\n", answer{405, []byte("only GET and HEAD are supported\n"), false}, false},
		{"Connection: close", "GET " + path + " HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n", answer{200, small, false}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resps, conn, br := exchange(t, c.addr, tc.raw, tc.want)
			if tc.want.code == 400 {
				return // net/http's own answer; the connection is closed below
			}
			if tc.closes {
				if strings.Contains(tc.raw, "Connection: close") && !resps[0].Close {
					t.Errorf("no Connection: close in the answer")
				}
				if _, err := br.ReadByte(); err != io.EOF {
					t.Errorf("the connection stays open after the answer (%v)", err)
				}
				return
			}
			// The connection carries the next request.
			fmt.Fprintf(conn, "GET %s HTTP/1.1\r\n%s\r\n", path, host)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("next request: %v", err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || !bytes.Equal(b, small) {
				t.Errorf("next request: %s with %d bytes", resp.Status, len(b))
			}
		})
	}
}

// TestHitPathRefusesClientsNotAllowed checks that allowed_hosts holds for
// cached files too.
func TestHitPathRefusesClientsNotAllowed(t *testing.T) {
	root := t.TempDir()
	writeRandom(t, root, "/pool/main/s/small_1_all.deb", 10_000)
	up := repotest.NewUpstream(t, root)
	dir := t.TempDir()
	t.Run("fill", func(t *testing.T) {
		c := startCacher(t, up.HostPort(), dir)
		get(t, c.url("/local/pool/main/s/small_1_all.deb"))
	})
	c := startCacher(t, up.HostPort(), dir, "allowed_hosts=10.0.0.0/8")
	resp, body := getFrom(t, "127.0.0.2", c.url("/local/pool/main/s/small_1_all.deb")) // 127.0.0.1 is always allowed
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "allowed_hosts") {
		t.Errorf("a client outside allowed_hosts got %s (%d bytes) for a cached file; want 403 naming allowed_hosts", resp.Status, len(body))
	}
}

// TestShutdownClosesIdleHitConnections checks that stopping pkg-cacher does
// not wait for keep-alive connections that only had hits.
func TestShutdownClosesIdleHitConnections(t *testing.T) {
	root := t.TempDir()
	small := writeRandom(t, root, "/pool/main/s/small_1_all.deb", 10_000)
	up := repotest.NewUpstream(t, root)
	dir := t.TempDir()
	cfg, err := cacheconf.Load("", []string{
		"cache_dir=" + filepath.Join(dir, "cache"), "logdir=" + filepath.Join(dir, "log"),
		"path_map=local " + up.HostPort(),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	defer func() { cancel(); <-done }()
	url := "http://" + ln.Addr().String() + "/local/pool/main/s/small_1_all.deb"
	get(t, url)
	raw := "GET /local/pool/main/s/small_1_all.deb HTTP/1.1\r\nHost: x\r\n\r\n"
	resps, conn, _ := exchange(t, ln.Addr().String(), raw, answer{200, small, false})
	if resps[0].Header.Get("X-Cache") != "HIT" {
		t.Fatalf("X-Cache %q, want HIT", resps[0].Header.Get("X-Cache"))
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second): // the shutdown's grace period is 10 s, the idle timeout 120 s
		t.Fatal("Serve still waits 5 s after its context ended, with one idle connection open")
	}
	if err := closedByServer(conn, 10*time.Second); err != nil {
		t.Errorf("the idle connection after shutdown: %v", err)
	}
}

// TestHitPathBytesEqualNetHTTP sends every shape of request the hit path
// answers, pipelined on one connection, once to pkg-cacher and once to the
// same front served by net/http alone: the bytes that come back are the
// same, Date aside.
func TestHitPathBytesEqualNetHTTP(t *testing.T) {
	root := t.TempDir()
	writeRandom(t, root, "/pool/main/s/small_1_all.deb", 10_000)
	writeRandom(t, root, "/pool/main/b/big_1_amd64.deb", 300_000)
	primary := writeRandom(t, root, "/repodata/primary.xml.gz", 20_000)
	sum := sha256.Sum256(primary)
	repodata := "/local/repodata/" + hex.EncodeToString(sum[:]) + "-primary.xml.gz" // checked against its name
	if err := os.Rename(filepath.Join(root, "repodata/primary.xml.gz"), filepath.Join(root, strings.TrimPrefix(repodata, "/local"))); err != nil {
		t.Fatal(err)
	}
	up := repotest.NewUpstream(t, root)
	cfg := testConfig(t, up.HostPort(), "")
	srv, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	fast, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, fast); close(done) }()
	defer func() { cancel(); <-done }()
	plain := httptest.NewUnstartedServer(srv.handler)
	plain.Config.ConnContext = hitpath.ConnContext
	plain.Start()
	defer plain.Close()

	small, big := "/local/pool/main/s/small_1_all.deb", "/local/pool/main/b/big_1_amd64.deb"
	for _, p := range []string{small, big, repodata, "/" + up.HostPort() + "/pool/main/s/small_1_all.deb"} {
		get(t, "http://"+fast.Addr().String()+p)
	}
	host := "Host: cacher:3142\r\n"
	raw := "GET " + small + " HTTP/1.1\r\n" + host + "\r\n" +
		"GET http://" + up.HostPort() + "/pool/main/s/small_1_all.deb HTTP/1.1\r\nHost: " + up.HostPort() + "\r\nUser-Agent: Debian APT-HTTP/1.3 (2.6.1)\r\nCache-Control: max-age=0\r\n\r\n" +
		"HEAD " + small + " HTTP/1.1\r\n" + host + "\r\n" +
		"HEAD " + big + " HTTP/1.1\r\n" + host + "\r\n" +
		"GET " + big + " HTTP/1.1\r\n" + host + "Accept: */*\r\nUser-Agent: libdnf\r\nCache-Control: no-cache\r\nPragma: no-cache\r\n\r\n" +
		"GET " + repodata + " HTTP/1.1\r\n" + host + "Accept-Encoding: gzip\r\nAccept-Language: en\r\n\r\n" +
		"GET " + small + " HTTP/1.1\r\n" + host + "Connection: keep-alive\r\nProxy-Connection: Keep-Alive\r\n\r\n" +
		"GET " + small + " HTTP/1.1\r\n" + host + "User-Agent: curl/7.88.1\r\nAccept: */*\r\nConnection: close\r\n\r\n"
	exchangeAll := func(addr string) []byte {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		io.WriteString(conn, raw)
		b, err := io.ReadAll(conn) // the last request closes the connection
		if err != nil {
			t.Fatal(err)
		}
		return regexp.MustCompile(`(?m)^Date: [^\r]*\r\n`).ReplaceAll(b, nil)
	}
	got, want := exchangeAll(fast.Addr().String()), exchangeAll(plain.Listener.Addr().String())
	if !bytes.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Errorf("the hit path's answers (%d bytes) differ from net/http's (%d bytes) at byte %d:\nhit path: %q\nnet/http: %q",
			len(got), len(want), i, got[max(0, i-200):min(len(got), i+100)], want[max(0, i-200):min(len(want), i+100)])
	}
	if n := bytes.Count(got, []byte("X-Cache: HIT")); n != 8 {
		t.Errorf("%d answers say X-Cache: HIT, want all 8", n)
	}
}
