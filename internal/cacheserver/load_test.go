package cacheserver

// Load and fault tests: a thousand connections at once, clients that send
// headers slowly or hang up mid-download, upstreams that never answer. They
// are bounded by deadlines; none asserts on speed.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"vzpkg2/internal/cacheconf"
	"vzpkg2/internal/repotest"
)

// raiseFileLimit makes sure the process may hold n open files, raising the
// limit if needed (and restoring it afterwards), or skips the test.
func raiseFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("cannot read the open-file limit: %v", err)
	}
	if lim.Cur >= n {
		return
	}
	raised := syscall.Rlimit{Cur: n, Max: max(lim.Max, n)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
		t.Skipf("needs %d open files; the limit is %d (hard %d) and cannot be raised: %v", n, lim.Cur, lim.Max, err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) })
}

// settle waits until at most maxGoroutines goroutines run (none if
// maxGoroutines < 0), then collects garbage and returns the live heap and
// the goroutine count.
func settle(t *testing.T, maxGoroutines int) (heap uint64, goroutines int) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); maxGoroutines >= 0 && runtime.NumGoroutine() > maxGoroutines; {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines still run 15 s after the clients left, want at most %d", runtime.NumGoroutine(), maxGoroutines)
		}
		time.Sleep(50 * time.Millisecond)
	}
	runtime.GC() // twice: the first moves sync.Pool contents to the victim cache
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, runtime.NumGoroutine()
}

// TestLoadThousandConnections keeps 1,000 keep-alive connections busy for
// 10 s with a mix of a volatile index (revalidated every second) and two
// packages, in all three client forms. Every response must be complete and
// correct, the packages must come from the cache, and once the clients leave
// the goroutines and the heap must return to where they were before.
func TestLoadThousandConnections(t *testing.T) {
	const (
		conns    = 1000
		duration = 10 * time.Second
		// Heap the server may keep after the load: caches such as the
		// upstream transport's. A per-connection or per-request leak
		// exceeds it (1,000 connections, over 10,000 requests).
		heapSlack = 8 << 20
		// Goroutines that may outlive the load: idle upstream connections.
		goroutineSlack = 20
	)
	if testing.Short() {
		t.Skip("load test: 10 s with 1,000 connections")
	}
	raiseFileLimit(t, 2*conns+512)
	root := t.TempDir()
	type file struct {
		path string
		body []byte
	}
	files := []file{
		{"/dists/stable/InRelease", nil},
		{"/pool/main/s/small/small_1.0_all.deb", nil},
		{"/pool/main/l/large/large_1.0_amd64.deb", nil},
	}
	for i, size := range []int{3000, 10 << 10, 256 << 10} {
		files[i].body = writeRandom(t, root, files[i].path, size)
	}
	up := repotest.NewUpstream(t, root)
	c := startCacher(t, up.HostPort(), "", "volatile_ttl=1")
	forms := []string{"/local", "/" + up.HostPort(), "http://" + up.HostPort()}
	for _, f := range files {
		if resp, body := get(t, c.url("/local"+f.path)); resp.StatusCode != 200 || !bytes.Equal(body, f.body) {
			t.Fatalf("warm-up GET %s: got %d with %d bytes, want 200 with %d", f.path, resp.StatusCode, len(body), len(f.body))
		}
	}
	debs := up.CountSuffix(".deb")
	heap0, goroutines0 := settle(t, -1)

	clients := make([]net.Conn, conns)
	for i := range clients {
		conn, err := net.DialTimeout("tcp", c.addr, 10*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		clients[i] = conn
	}
	// All 1,000 connections are open now; each sends requests one after the
	// other until the load ends.
	end := time.Now().Add(duration)
	served := make([]int, conns)
	errs := make([]error, conns)
	var wg sync.WaitGroup
	for i, conn := range clients {
		wg.Go(func() {
			defer conn.Close()
			br := bufio.NewReader(conn)
			for n := i; time.Now().Before(end); n++ {
				f, form := files[n%len(files)], forms[n/len(files)%len(forms)]
				conn.SetDeadline(time.Now().Add(30 * time.Second))
				if _, err := fmt.Fprintf(conn, "GET %s%s HTTP/1.1\r\nHost: %s\r\n\r\n", form, f.path, c.addr); err != nil {
					errs[i] = fmt.Errorf("request %d: %w", served[i]+1, err)
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					errs[i] = fmt.Errorf("response %d: %w", served[i]+1, err)
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, f.body) {
					errs[i] = fmt.Errorf("GET %s%s: got %d with %d bytes (%v), want 200 with the upstream's %d", form, f.path, resp.StatusCode, len(body), err, len(f.body))
					return
				}
				served[i]++
			}
		})
	}
	var peak uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-sampled

	total, failed := 0, 0
	for i := range clients {
		total += served[i]
		if errs[i] != nil {
			if failed++; failed <= 5 {
				t.Errorf("connection %d after %d good responses: %v", i, served[i], errs[i])
			}
		} else if served[i] == 0 {
			t.Errorf("connection %d got no response in %v", i, duration)
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d connections failed", failed, conns)
	}
	if n := up.CountSuffix(".deb"); n != debs {
		t.Errorf("the upstream got %d package requests during the load, want 0: packages are cached", n-debs)
	}
	heap1, goroutines1 := settle(t, goroutines0+goroutineSlack)
	t.Logf("%d responses on %d connections; heap %d KiB before, peak %d KiB, %d KiB after; goroutines %d before, %d after",
		total, conns, heap0>>10, peak>>10, heap1>>10, goroutines0, goroutines1)
	if heap1 > heap0+heapSlack {
		t.Errorf("heap after the load is %d KiB, want at most %d KiB (%d KiB before, plus %d KiB)", heap1>>10, (heap0+heapSlack)>>10, heap0>>10, heapSlack>>10)
	}
}

// startTuned starts pkg-cacher for cfg like `pkg-cacher serve` does, after
// passing its HTTP server to tune, and returns its address.
func startTuned(t *testing.T, cfg *cacheconf.Config, tune func(*http.Server)) string {
	t.Helper()
	srv, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	tune(srv.http)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// TestSlowClientsDoNotStarveOthers opens 500 connections that send their
// request headers a byte at a time and never finish them. Other clients must
// be served meanwhile, and pkg-cacher must drop the slow connections when
// the header timeout passes; idle keep-alive connections must be dropped
// after the idle timeout.
func TestSlowClientsDoNotStarveOthers(t *testing.T) {
	const slow = 500
	raiseFileLimit(t, 2*slow+512)
	root := t.TempDir()
	want := writeRandom(t, root, "/pool/a_1_all.deb", 50_000)
	up := repotest.NewUpstream(t, root)
	cfg := testConfig(t, up.HostPort(), "")
	// pkg-cacher's own timeouts are tens of seconds; the test shortens them
	// after checking that they are set at all.
	const headerTimeout, idleTimeout = 2 * time.Second, time.Second
	addr := startTuned(t, cfg, func(s *http.Server) {
		if s.ReadHeaderTimeout <= 0 || s.IdleTimeout <= 0 {
			t.Errorf("pkg-cacher's HTTP server has ReadHeaderTimeout %v and IdleTimeout %v; without both a client can hold a connection open forever", s.ReadHeaderTimeout, s.IdleTimeout)
		}
		s.ReadHeaderTimeout, s.IdleTimeout = headerTimeout, idleTimeout
	})
	url := "http://" + addr + "/local/pool/a_1_all.deb"

	conns := make([]net.Conn, slow)
	for i := range conns {
		conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatalf("slow connection %d: %v", i, err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /local/pool/a_1_all.deb HTTP/1.1\r\nHost: %s\r\nX-Slow: ", addr)
		conns[i] = conn
	}
	stopTrickle := make(chan struct{})
	trickled := make(chan struct{})
	go func() {
		defer close(trickled)
		for {
			select {
			case <-stopTrickle:
				return
			case <-time.After(100 * time.Millisecond):
				for _, conn := range conns {
					conn.Write([]byte("x"))
				}
			}
		}
	}()
	defer func() { close(stopTrickle); <-trickled }()

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := range 20 {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("request %d while %d clients send headers slowly: %v", i, slow, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, want) {
			t.Fatalf("request %d while %d clients send headers slowly: got %d with %d bytes (%v), want 200 with %d", i, slow, resp.StatusCode, len(body), err, len(want))
		}
	}

	for i, conn := range conns {
		if err := closedByServer(conn, 10*time.Second); err != nil {
			t.Fatalf("slow connection %d (header timeout %v): %v", i, headerTimeout, err)
		}
	}

	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	fmt.Fprintf(idle, "GET /local/pool/a_1_all.deb HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	br := bufio.NewReader(idle)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if br.Buffered() > 0 {
		t.Errorf("server sent %d bytes after the response", br.Buffered())
	}
	if err := closedByServer(idle, 10*time.Second); err != nil {
		t.Errorf("idle keep-alive connection (idle timeout %v): %v", idleTimeout, err)
	}
}

// closedByServer reads from conn until the server closes it, and fails if
// the server sends anything or keeps it open for d.
func closedByServer(conn net.Conn, d time.Duration) error {
	conn.SetReadDeadline(time.Now().Add(d))
	n, err := conn.Read(make([]byte, 512))
	switch {
	case n > 0:
		return fmt.Errorf("server sent %d bytes, want it to close the connection", n)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("still open after %v", d)
	case err == nil:
		return errors.New("read returned nothing and no error")
	}
	return nil // io.EOF, or a reset because unread bytes were pending
}

// TestClientHangupDoesNotCancelFill has a client hang up while its file is
// half downloaded. Another client of the same download gets the whole file.
// When no client is left, a package whose size and checksum cached metadata
// promises is downloaded into the cache anyway (the fleet's next client
// will want it); any other file's download is abandoned, nothing of it is
// stored, and the next request fetches it afresh.
func TestClientHangupDoesNotCancelFill(t *testing.T) {
	for _, tc := range []struct {
		name         string
		others       int  // clients of the same download that stay
		promised     bool // a cached Packages lists the file
		wantUpstream int  // upstream requests for the file in the end
	}{
		{"another client stays", 1, false, 1},
		{"the only client hangs up, metadata promises the package", 0, true, 1},
		{"the only client hangs up, nothing promises the file", 0, false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			path := "/pool/main/b/big/big_1.0_amd64.deb"
			var want []byte
			if tc.promised {
				repo := repotest.BuildAptRepo(t, root, "stable", []repotest.Deb{{Name: "big", Version: "1.0", Size: 4 << 20}})
				path = "/" + repo.Debs["big"]
				var err error
				if want, err = os.ReadFile(filepath.Join(root, path)); err != nil {
					t.Fatal(err)
				}
			} else {
				want = writeRandom(t, root, path, 4<<20)
			}
			up := repotest.NewUpstream(t, root)
			halfway, release := make(chan struct{}, 1), make(chan struct{})
			up.SetHandler(gated(path, halfway, release))
			c := startCacher(t, up.HostPort(), "")
			url := c.url("/local" + path)
			if tc.promised {
				if resp, _ := get(t, c.url("/local/dists/stable/main/binary-amd64/Packages")); resp.StatusCode != 200 {
					t.Fatalf("Packages: got %d, want 200", resp.StatusCode)
				}
			}

			quitter, err := net.Dial("tcp", c.addr)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(quitter, "GET /local%s HTTP/1.1\r\nHost: %s\r\n\r\n", path, c.addr)
			select {
			case <-halfway:
			case <-time.After(30 * time.Second):
				t.Fatal("upstream never got the request")
			}
			stayed := make([]chan []byte, tc.others)
			joined := make(chan struct{}, tc.others) // a client has its answer's header: it is in the download
			for i := range stayed {
				stayed[i] = make(chan []byte, 1)
				go func() {
					resp, err := http.Get(url)
					joined <- struct{}{}
					if err != nil {
						stayed[i] <- nil
						return
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					stayed[i] <- b
				}()
			}
			for range tc.others {
				<-joined
			}
			resp, err := http.ReadResponse(bufio.NewReader(quitter), nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(resp.Body, make([]byte, 64<<10)); err != nil {
				t.Fatalf("hanging-up client: reading the first 64 KiB: %v", err)
			}
			quitter.Close()
			hungUp := func() []string {
				var out []string
				for _, l := range c.accessLog(t) {
					if strings.HasSuffix(l, path) {
						out = append(out, l)
					}
				}
				return out
			}
			waitFor(t, "pkg-cacher to log the hung-up request", func() bool { return len(hungUp()) > 0 })
			if got := hungUp()[0]; !strings.HasPrefix(got, "MISS 200 ") {
				t.Errorf("hung-up request logged as %q, want MISS 200", got)
			}
			close(release)

			for i, ch := range stayed {
				select {
				case b := <-ch:
					if !bytes.Equal(b, want) {
						t.Errorf("client %d that stayed got %d bytes, want the whole %d", i, len(b), len(want))
					}
				case <-time.After(30 * time.Second):
					t.Fatalf("client %d that stayed got no complete response", i)
				}
			}
			var got []string
			waitFor(t, "the file to be served from the cache", func() bool {
				resp, body := get(t, url)
				got = append(got, resp.Header.Get("X-Cache"))
				return resp.Header.Get("X-Cache") == "HIT" && bytes.Equal(body, want)
			})
			if n := up.Count(path); n != tc.wantUpstream {
				t.Errorf("upstream got %d requests for the file, want %d (X-Cache of later requests: %v)", n, tc.wantUpstream, got)
			}
		})
	}
}

// waitFor polls cond until it holds, failing the test after 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s after 30 s", what)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestUpstreamNeverAnswers has the upstream go silent, before the response
// header or in the middle of the body. pkg-cacher must abandon it after
// fetch_timeout, fail the client's request (never a short file passed off
// as whole), store nothing, and fetch afresh once the upstream is back.
func TestUpstreamNeverAnswers(t *testing.T) {
	const fetchTimeout = time.Second
	for _, tc := range []struct {
		name     string
		sendHalf bool // send the header and half the body before going silent
	}{
		{"no response header", false},
		{"body stops", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			const path = "/pool/main/s/stuck/stuck_1.0_all.deb"
			want := writeRandom(t, root, path, 100_000)
			up := repotest.NewUpstream(t, root)
			abandoned := make(chan struct{}, 1)
			up.SetHandler(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
				if tc.sendHalf {
					w.Header().Set("Content-Length", fmt.Sprint(len(want)))
					w.WriteHeader(http.StatusOK)
					w.Write(want[:len(want)/2])
					w.(http.Flusher).Flush()
				}
				select {
				case <-r.Context().Done():
					abandoned <- struct{}{}
				case <-t.Context().Done():
				}
			})
			c := startCacher(t, up.HostPort(), "", fmt.Sprintf("fetch_timeout=%v", fetchTimeout), "connect_timeout=1")
			url := c.url("/local" + path)

			client := &http.Client{Timeout: fetchTimeout + 20*time.Second}
			resp, err := client.Get(url)
			if err == nil {
				var body []byte
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case isTimeout(err):
					t.Fatalf("pkg-cacher kept the client waiting for %v with fetch_timeout %v", client.Timeout, fetchTimeout)
				case err == nil && resp.StatusCode == http.StatusOK:
					t.Fatalf("client got a complete-looking response of %d bytes from an upstream that went silent", len(body))
				case err == nil && resp.StatusCode != http.StatusBadGateway && resp.StatusCode != http.StatusGatewayTimeout:
					t.Errorf("got %d %q, want 502 or 504", resp.StatusCode, body)
				}
				t.Logf("client got %d, %d bytes, read error %v", resp.StatusCode, len(body), err)
			} else if isTimeout(err) {
				t.Fatalf("pkg-cacher kept the client waiting for %v with fetch_timeout %v", client.Timeout, fetchTimeout)
			}
			select {
			case <-abandoned:
			case <-time.After(20 * time.Second):
				t.Fatalf("pkg-cacher still holds the silent upstream's request %v after fetch_timeout %v", 20*time.Second, fetchTimeout)
			}
			if n := countFiles(t, filepath.Join(c.dir, "blobs")); n != 0 {
				t.Errorf("store holds %d files after the upstream went silent, want 0", n)
			}

			up.SetHandler(nil)
			resp2, body := get(t, url)
			if resp2.StatusCode != 200 || !bytes.Equal(body, want) {
				t.Errorf("after the upstream came back: got %d with %d bytes, want 200 with %d", resp2.StatusCode, len(body), len(want))
			}
			if n := up.Count(path); n != 2 {
				t.Errorf("upstream got %d requests, want 2 (the abandoned one and a fresh one)", n)
			}
		})
	}
}

// TestNonReadingClientsAreDropped has 300 clients ask for a cached 8 MB
// package and never read the answer. A normal client is served within a
// second throughout, and once write_timeout passes pkg-cacher has dropped
// them all: its descriptors are back to their idle count.
func TestNonReadingClientsAreDropped(t *testing.T) {
	const stalled = 300
	raiseFileLimit(t, 4*stalled+512)
	root := t.TempDir()
	writeRandom(t, root, "/pool/main/b/big_1_all.deb", 8<<20)
	small := writeRandom(t, root, "/pool/main/s/small_1_all.deb", 10_000)
	up := repotest.NewUpstream(t, root)
	c := startCacher(t, up.HostPort(), "", "write_timeout=2")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	fetchSmall := func() (time.Duration, error) {
		start := time.Now()
		resp, err := client.Get(c.url("/local/pool/main/s/small_1_all.deb"))
		if err != nil {
			return 0, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && (resp.StatusCode != 200 || !bytes.Equal(b, small)) {
			err = fmt.Errorf("got %d with %d bytes", resp.StatusCode, len(b))
		}
		return time.Since(start), err
	}
	for _, p := range []string{"/local/pool/main/b/big_1_all.deb", "/local/pool/main/s/small_1_all.deb"} {
		resp, err := client.Get(c.url(p))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	// Descriptors of the process that are not the test's client sockets.
	clientFDs := map[string]bool{}
	serverFDs := func() int {
		entries, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range entries {
			if !clientFDs[e.Name()] {
				n++
			}
		}
		return n
	}
	var idle int
	waitFor(t, "the descriptors to settle", func() bool {
		a := serverFDs()
		time.Sleep(200 * time.Millisecond)
		idle = serverFDs()
		return a == idle
	})

	// Small receive buffers, so that the kernel holds little of the answer.
	dialer := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	for i := range stalled {
		conn, err := dialer.Dial("tcp", c.addr)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		defer conn.Close()
		rc, _ := conn.(*net.TCPConn).SyscallConn()
		rc.Control(func(fd uintptr) { clientFDs[fmt.Sprint(fd)] = true })
		fmt.Fprintf(conn, "GET /local/pool/main/b/big_1_all.deb HTTP/1.1\r\nHost: %s\r\n\r\n", c.addr)
	}
	if n := serverFDs(); n < idle+stalled {
		t.Fatalf("pkg-cacher holds %d descriptors with %d clients connected, %d when idle: the clients are not being served", n, stalled, idle)
	}
	deadline := time.Now().Add(30 * time.Second)
	for checks := 0; ; checks++ {
		d, err := fetchSmall()
		if err != nil || d > time.Second {
			t.Fatalf("normal client while %d clients read nothing: %v after %v, want the file within 1 s", stalled, err, d)
		}
		if serverFDs() <= idle && checks >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pkg-cacher still holds %d descriptors (%d when idle) 30 s after %d clients stopped reading, with write_timeout 2 s", serverFDs(), idle, stalled)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
