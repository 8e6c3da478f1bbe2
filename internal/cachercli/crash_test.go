package cachercli

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"vzpkg2/internal/repotest"
)

// childEnv makes the test binary run pkg-cacher itself (see TestMain), so a
// test can kill -9 a real pkg-cacher process.
const childEnv = "PKG_CACHER_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		cmd := New()
		cmd.SetArgs(os.Args[1:])
		if err := cmd.Execute(); err != nil {
			fmt.Fprintln(os.Stderr, "pkg-cacher:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startChild runs `pkg-cacher serve args...` in a child process and waits until it answers.
func startChild(t *testing.T, port int, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"serve", "daemon_addr=127.0.0.1", fmt.Sprint("daemon_port=", port)}, args...)...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port)); err == nil {
			resp.Body.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatal("pkg-cacher child does not answer")
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestKill9WithDownloadsInFlight kills pkg-cacher while 20 downloads are
// half done: afterwards every cached file verifies, the temp area is clean,
// and the interrupted files are fetched again on request.
func TestKill9WithDownloadsInFlight(t *testing.T) {
	const n, size = 20, 1 << 20
	files := t.TempDir()
	bodies := map[string][]byte{}
	for i := range n + 5 {
		name := fmt.Sprintf("pool/f%02d.deb", i)
		b := make([]byte, size)
		rand.Read(b)
		bodies[name] = b
		os.MkdirAll(filepath.Join(files, "pool"), 0o755)
		os.WriteFile(filepath.Join(files, name), b, 0o644)
	}
	up := repotest.NewUpstream(t, files)
	host := up.HostPort()
	dir := t.TempDir()
	port := freePort(t)
	settings := []string{"cache_dir=" + dir, "logdir=" + dir, "allowed_locations=" + host}
	child := startChild(t, port, settings...)
	url := func(name string) string { return fmt.Sprintf("http://127.0.0.1:%d/%s/%s", port, host, name) }

	// Five files complete before the crash.
	for i := n; i < n+5; i++ {
		name := fmt.Sprintf("pool/f%02d.deb", i)
		resp, err := http.Get(url(name))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	// The upstream sends half of each of the 20 others, then stalls.
	stall := make(chan struct{})
	defer close(stall)
	up.SetHandler(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		b := bodies[strings.TrimPrefix(r.URL.Path, "/")]
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.Write(b[:len(b)/2])
		w.(http.Flusher).Flush()
		<-stall
	})
	// The clients stay until the crash: a download no client waits for is
	// abandoned (these files are promised by no metadata).
	var halfway sync.WaitGroup
	crashed := make(chan struct{})
	for i := range n {
		halfway.Add(1)
		go func() {
			resp, err := http.Get(url(fmt.Sprintf("pool/f%02d.deb", i)))
			if err != nil {
				t.Error(err)
				halfway.Done()
				return
			}
			defer resp.Body.Close()
			io.ReadFull(resp.Body, make([]byte, size/4))
			halfway.Done()
			<-crashed
		}()
	}
	halfway.Wait()
	if left, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(left) < n {
		t.Fatalf("%d files in the temp area mid-download, want %d", len(left), n)
	}
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	close(crashed)

	// The store as the crash left it: verify opens it (cleaning the temp area) and re-hashes it.
	out, err := execute(context.Background(), "verify", "cache_dir="+dir)
	if err != nil || !strings.Contains(out, "5 files, 5242880 bytes checked: 0 problems") {
		t.Fatalf("verify after kill -9: %q, %v", out, err)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(left) != 0 {
		t.Errorf("temp area holds %d files after restart", len(left))
	}

	up.SetHandler(nil)
	startChild(t, port, settings...)
	for name, want := range bodies {
		resp, err := http.Get(url(name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(got) != string(want) {
			t.Errorf("%s after restart: %d bytes, %v; want the upstream's %d", name, len(got), err, len(want))
		}
	}
	for i := range n + 5 {
		name := fmt.Sprintf("/pool/f%02d.deb", i)
		want := 2
		if i >= n {
			want = 1 // complete before the crash: served from the cache
		}
		if got := up.Count(name); got != want {
			t.Errorf("upstream GETs of %s: %d, want %d", name, got, want)
		}
	}
}

// After a kill -9, a body whose index entry was never written takes space
// only: serve answers at once and removes it in the background.
func TestServeCollectsWhatACrashLeft(t *testing.T) {
	files := t.TempDir()
	os.MkdirAll(filepath.Join(files, "pool"), 0o755)
	os.WriteFile(filepath.Join(files, "pool/a.deb"), []byte("a package"), 0o644)
	up := repotest.NewUpstream(t, files)
	dir := t.TempDir()
	port := freePort(t)
	settings := []string{"cache_dir=" + dir, "logdir=" + dir, "allowed_locations=" + up.HostPort()}
	url := fmt.Sprintf("http://127.0.0.1:%d/%s/pool/a.deb", port, up.HostPort())
	get := func() {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != "a package" {
			t.Fatalf("GET a.deb: %q, %v", b, err)
		}
	}
	child := startChild(t, port, settings...)
	get()
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	// A body renamed into place just before the crash, its entry never written.
	body := []byte("orphaned body")
	sum := sha256.Sum256(body)
	orphan := filepath.Join(dir, "blobs", hex.EncodeToString(sum[:1]), hex.EncodeToString(sum[:]))
	if err := os.WriteFile(orphan, body, 0o644); err != nil {
		t.Fatal(err)
	}

	startChild(t, port, settings...)
	get()
	if up.Count("/pool/a.deb") != 1 {
		t.Errorf("a.deb fetched %d times, want once: the cached file was lost", up.Count("/pool/a.deb"))
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(orphan); errors.Is(err, fs.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the body the crash left is still in the cache 20 s after the restart")
		}
	}
}
