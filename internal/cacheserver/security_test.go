package cacheserver

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vzpkg2/internal/repotest"
)

// A redirect is followed only inside allowed_locations or the path_map's
// mirrors, and never from https to plain http: otherwise an upstream, or
// anyone who can answer for it, picks a host the clients could not name and
// the cache stores what that host sends.
func TestRedirectStaysInsideAllowedLocations(t *testing.T) {
	const path = "/pool/main/x/x/x_1_all.deb"
	outsideRoot := t.TempDir()
	writeRandom(t, outsideRoot, "/elsewhere"+path, 10_000)
	outside := repotest.NewUpstream(t, outsideRoot)

	plain := repotest.NewUpstream(t, t.TempDir())
	tlsUp := repotest.NewTLSUpstream(t, t.TempDir())
	for _, tc := range []struct {
		name     string
		up       *repotest.Upstream
		location string // where up redirects every request
		request  string // the client's request path
		settings []string
	}{
		{"to a host not allowed", plain, outside.URL() + "/elsewhere" + path, "/" + plain.HostPort() + path, nil},
		{"to a host not allowed, path_map form", plain, outside.URL() + "/elsewhere" + path, "/local" + path, nil},
		{"out of an allowed path prefix", outside, "/elsewhere" + path, "/" + outside.HostPort() + "/okpath" + path,
			[]string{"allowed_locations=" + outside.HostPort() + "/okpath", "path_map=local " + outside.HostPort() + "/okpath"}},
		{"out of a path_map mirror's path", outside, "/elsewhere" + path, "/local" + path,
			[]string{"allowed_locations=", "path_map=local " + outside.HostPort() + "/okpath"}},
		{"encoded dot segments", outside, "/okpath/%2e%2e/elsewhere" + path, "/" + outside.HostPort() + "/okpath" + path,
			[]string{"allowed_locations=" + outside.HostPort() + "/okpath"}},
		{"from https to http", tlsUp, outside.URL() + "/elsewhere" + path, "/HTTPS///" + tlsUp.HostPort() + path,
			[]string{"allowed_locations=" + tlsUp.HostPort() + "," + outside.HostPort(), "ca_file=" + tlsUp.CAFile()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.up.SetHandler(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
				if r.URL.Path == "/elsewhere"+path {
					next.ServeHTTP(w, r)
					return
				}
				w.Header().Set("Location", tc.location)
				w.WriteHeader(http.StatusFound)
			})
			t.Cleanup(func() { tc.up.SetHandler(nil) })
			outside.Reset()
			c := startCacher(t, plain.HostPort(), "", tc.settings...)
			for i := range 2 {
				resp, body := get(t, c.url(tc.request))
				if resp.StatusCode != http.StatusBadGateway {
					t.Errorf("request %d: got %d %s with %d bytes, want 502: the redirect leaves what the cache may fetch", i+1, resp.StatusCode, resp.Header.Get("X-Cache"), len(body))
				}
			}
			if n := outside.CountContains("/elsewhere"); n != 0 {
				t.Errorf("the place redirected to got %d requests, want 0: %q", n, outside.Requests())
			}
			if n := countFiles(t, filepath.Join(c.dir, "blobs")); n != 0 {
				t.Errorf("the store holds %d files after a refused redirect, want 0", n)
			}
		})
	}
}

// The scheme is part of the key: a file fetched from an http upstream is
// never the answer for the https upstream of the same host and path, since
// anyone on the path to the http mirror chose its bytes.
func TestSchemeIsPartOfTheKey(t *testing.T) {
	root := t.TempDir()
	const path = "/pool/main/f/f/f_1_all.deb"
	want := writeRandom(t, root, path, 20_000)
	up := repotest.NewUpstream(t, root)
	c := startCacher(t, up.HostPort(), "", "path_map=") // the host-named forms alone
	resp, body := get(t, c.url("/"+up.HostPort()+path))
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
		t.Fatalf("http form: got %d with %d bytes, want 200 with %d", resp.StatusCode, len(body), len(want))
	}
	// The upstream speaks plain http only: over https it cannot answer.
	resp, body = get(t, c.url("/HTTPS///"+up.HostPort()+path))
	if resp.StatusCode == http.StatusOK || resp.Header.Get("X-Cache") == "HIT" {
		t.Errorf("https form after the http form: got %d %s with %d bytes, want a failure to reach the https upstream", resp.StatusCode, resp.Header.Get("X-Cache"), len(body))
	}
}

// A '?' encoded in a file's name and a real query are different files.
func TestEncodedQuestionMarkIsNotAQuery(t *testing.T) {
	root := t.TempDir()
	named := writeRandom(t, root, "/pool/q.deb?v=1", 3_000)
	plainFile := writeRandom(t, root, "/pool/q.deb", 4_000)
	up := repotest.NewUpstream(t, root)
	c := startCacher(t, up.HostPort(), "")
	for _, tc := range []struct {
		request string
		want    []byte
	}{
		{"/local/pool/q.deb%3Fv=1", named},
		{"/local/pool/q.deb?v=1", plainFile}, // the upstream ignores the query
		{"/local/pool/q.deb%3Fv=1", named},
	} {
		resp, body := get(t, c.url(tc.request))
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, tc.want) {
			t.Errorf("%s: got %d %s with %d bytes, want 200 with the %d bytes of that file", tc.request, resp.StatusCode, resp.Header.Get("X-Cache"), len(body), len(tc.want))
		}
	}
}

// Requests the hit path must leave to net/http, which refuses them: a
// header name that only Unicode folding makes "Host", one with a blank
// before its colon; and a GET with a body, whose connection must be closed
// after the answer since where the next request starts is in doubt.
func TestMalformedHeadsRefused(t *testing.T) {
	root := t.TempDir()
	writeRandom(t, root, "/pool/a_1_all.deb", 5_000)
	up := repotest.NewUpstream(t, root)
	c := startCacher(t, up.HostPort(), "")
	const path = "/local/pool/a_1_all.deb"
	get(t, c.url(path)) // cached: the hit path would answer a plain GET
	for _, tc := range []struct{ name, raw string }{
		{"Unicode-folded Host", "GET " + path + " HTTP/1.1\r\nHo\u017ft: " + c.addr + "\r\n\r\n"},
		{"blank before the colon", "GET " + path + " HTTP/1.1\r\nHost : " + c.addr + "\r\n\r\n"},
		{"GET with Content-Length and Transfer-Encoding", "GET " + path + " HTTP/1.1\r\nHost: " + c.addr + "\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"GET with a body", "GET " + path + " HTTP/1.1\r\nHost: " + c.addr + "\r\nContent-Length: 5\r\n\r\nhello"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, conn, br := exchange(t, c.addr, tc.raw, answer{code: http.StatusBadRequest})
			if _, err := br.ReadByte(); err != io.EOF {
				t.Errorf("the connection stays open after the 400 (%v)", err)
			}
			conn.Close()
		})
	}
}

// A request head the hit path began to read keeps one header timeout: when
// it turns out longer than the hit path's buffer, net/http must not start
// the timeout again.
func TestLongSlowHeadKeepsOneHeaderTimeout(t *testing.T) {
	up := repotest.NewUpstream(t, t.TempDir())
	cfg := testConfig(t, up.HostPort(), "")
	const headerTimeout = 2 * time.Second
	addr := startTuned(t, cfg, func(s *http.Server) { s.ReadHeaderTimeout = headerTimeout })

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	// 4 KB (the hit path's buffer) is complete after about 1.6 s; the head
	// never ends.
	fmt.Fprintf(conn, "GET /local/x HTTP/1.1\r\nHost: %s\r\nX-Pad: %s", addr, strings.Repeat("x", 3900))
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				if _, err := conn.Write([]byte(strings.Repeat("x", 12))); err != nil {
					return
				}
			}
		}
	}()
	if err := closedByServer(conn, 4*headerTimeout); err != nil {
		t.Fatal(err)
	}
	// Without the fix the connection lives 1.6 s + a fresh 2 s.
	if d := time.Since(start); d > headerTimeout+headerTimeout/2 {
		t.Errorf("the server closed the connection after %v, want about the header timeout %v", d.Round(100*time.Millisecond), headerTimeout)
	}
}

// A HEAD of a file that is not cached is answered from upstream's HEAD: it
// starts no download (five HEADs with different queries used to make five
// full downloads).
func TestHeadStartsNoDownload(t *testing.T) {
	root := t.TempDir()
	const path = "/pool/main/h/h/h_1_all.deb"
	want := writeRandom(t, root, path, 4<<20)
	up := repotest.NewUpstream(t, root)
	c := startCacher(t, up.HostPort(), "")
	for i := range 5 {
		req, _ := http.NewRequest(http.MethodHead, c.url(fmt.Sprintf("/local%s?v=%d", path, i)), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(want)) {
			t.Errorf("HEAD %d: got %d with Content-Length %d, want 200 with %d", i, resp.StatusCode, resp.ContentLength, len(want))
		}
	}
	for _, r := range up.Requests() {
		if !strings.HasPrefix(r, "HEAD ") {
			t.Errorf("upstream got %q; a HEAD must not start a download", r)
		}
	}
	if n := countFiles(t, filepath.Join(c.dir, "blobs")); n != 0 {
		t.Errorf("the store holds %d files after HEAD requests only, want 0", n)
	}
}

// An upstream that sends an endless body for a file no metadata gives the
// size of is cut off at max_file_size: the client's answer is aborted, the
// upstream connection closed, nothing stored.
func TestEndlessBodyStopsAtMaxFileSize(t *testing.T) {
	up := repotest.NewUpstream(t, t.TempDir())
	cut := make(chan struct{}, 1)
	up.SetHandler(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		w.Header().Set("Content-Type", "application/octet-stream")
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				cut <- struct{}{}
				return
			}
			select {
			case <-r.Context().Done():
				cut <- struct{}{}
				return
			case <-t.Context().Done():
				return
			default:
			}
		}
	})
	c := startCacher(t, up.HostPort(), "", "max_file_size=1M")
	// Aborted before or after the header: either way no answer looks whole.
	var n int64
	resp, err := http.Get(c.url("/local/pool/endless_1_all.deb"))
	if err == nil {
		n, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if err == nil || n > 1<<20 {
		t.Errorf("client got %d bytes, read error %v; want an aborted answer of at most 1 MiB", n, err)
	}
	select {
	case <-cut:
	case <-time.After(20 * time.Second):
		t.Fatal("pkg-cacher still reads the endless body 20 s later")
	}
	if n := countFiles(t, filepath.Join(c.dir, "blobs")); n != 0 {
		t.Errorf("the store holds %d files, want 0", n)
	}
	waitFor(t, "the fill's temp file to go", func() bool { return countFiles(t, filepath.Join(c.dir, "tmp")) == 0 })
}
