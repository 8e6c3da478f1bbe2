package cacheserver

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"vzpkg2/internal/proxy"
	"vzpkg2/internal/repotest"
)

// writeCounter counts the writes its connections make to their sockets.
type writeCounter struct {
	net.Listener
	writes atomic.Int64
}

func (l *writeCounter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countedConn{Conn: c, n: &l.writes}, nil
}

type countedConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countedConn) Write(p []byte) (int, error) {
	c.n.Add(1)
	return c.Conn.Write(p)
}

// TestSmallHitIsOneWrite checks that a cached small file leaves in one
// write, headers and body together (one TCP segment, one wake-up of the
// client), and that large files, HEAD and ranges on the same keep-alive
// connection are still answered whole.
func TestSmallHitIsOneWrite(t *testing.T) {
	root := t.TempDir()
	small := writeRandom(t, root, "/pool/main/s/small_1_all.deb", 10_000)
	big := writeRandom(t, root, "/pool/main/b/big_1_all.deb", 300_000)
	up := repotest.NewUpstream(t, root)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	counted := &writeCounter{Listener: ln}
	c := startCacherOn(t, counted, up.HostPort(), "")
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}, Timeout: rangeClient.Timeout}
	get := func(method, path string, header ...string) (*http.Response, []byte, int64) {
		t.Helper()
		req, err := http.NewRequest(method, c.url("/local"+path), nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		before := counted.writes.Load()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s: reading the body: %v", method, path, err)
		}
		return resp, b, counted.writes.Load() - before
	}
	get("GET", "/pool/main/s/small_1_all.deb") // fill
	get("GET", "/pool/main/b/big_1_all.deb")
	for round := range 2 {
		resp, b, writes := get("GET", "/pool/main/s/small_1_all.deb")
		if resp.Header.Get("X-Cache") != "HIT" || !bytes.Equal(b, small) {
			t.Fatalf("round %d: small file: X-Cache %q, %d bytes; want a HIT with the file's %d bytes", round, resp.Header.Get("X-Cache"), len(b), len(small))
		}
		if writes != 1 {
			t.Errorf("round %d: the cached 10 KB file took %d writes to the socket; want 1", round, writes)
		}
		if _, b, _ := get("GET", "/pool/main/b/big_1_all.deb"); !bytes.Equal(b, big) {
			t.Fatalf("round %d: big file: got %d bytes, want the file's %d", round, len(b), len(big))
		}
		resp, b, _ = get("HEAD", "/pool/main/s/small_1_all.deb")
		if len(b) != 0 || resp.ContentLength != int64(len(small)) {
			t.Fatalf("round %d: HEAD: %d body bytes, Content-Length %d; want none and %d", round, len(b), resp.ContentLength, len(small))
		}
		resp, b, _ = get("GET", "/pool/main/s/small_1_all.deb", "Range", "bytes=100-199")
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(b, small[100:200]) {
			t.Fatalf("round %d: range: %s with %d bytes; want 206 with bytes 100-199", round, resp.Status, len(b))
		}
	}
	if got := len(c.accessLog(t)); got != 10 {
		t.Errorf("access log has %d records; want 10, one per request:\n%s", got, strings.Join(c.accessLog(t), "\n"))
	}
}

// TestAccessLogGathersUnderLoad checks that lines recorded while other
// requests are in flight reach the file within a second, in order, and that
// an idle record writes everything gathered before it.
func TestAccessLogGathersUnderLoad(t *testing.T) {
	name := filepath.Join(t.TempDir(), "access.log")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l := proxy.NewAccessLog(f)
	now := time.Date(2026, 11, 28, 6, 50, 0, 123_456_789, time.UTC)
	read := func() string {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	l.Record(now, "10.0.0.5", "HIT", 200, 1234, "http://a/1", false)
	l.Record(now.Add(time.Second), "10.0.0.5", "MISS", 200, 5, "http://a/2", false)
	want := "2026-11-28T06:50:00.123Z 10.0.0.5 HIT 200 1234 http://a/1\n" +
		"2026-11-28T06:50:01.123Z 10.0.0.5 MISS 200 5 http://a/2\n"
	waitFor(t, "the gathered lines to be written", func() bool { return read() == want })
	l.Record(now.Add(2*time.Second+800*time.Millisecond), "::1", "PASS", 404, 0, "http://a/3", false)
	l.Record(now.Add(3*time.Second), "::1", "HIT", 200, 7, "http://a/4", true)
	want += "2026-11-28T06:50:02.923Z ::1 PASS 404 0 http://a/3\n" +
		"2026-11-28T06:50:03.123Z ::1 HIT 200 7 http://a/4\n"
	if got := read(); got != want {
		t.Fatalf("after an idle record the log is\n%s\nwant\n%s", got, want)
	}
}
