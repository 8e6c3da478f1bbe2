package repotest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RunWithBinaries builds the project's vzpkg and pkg-cacher into a temporary
// directory, sets *bin to it, runs m's tests, removes the directory and
// exits with the tests' status. It is the body of an end-to-end TestMain.
func RunWithBinaries(m *testing.M, bin *string) {
	dir, err := os.MkdirTemp("", "vzpkg2-bin-")
	if err != nil {
		panic(err)
	}
	*bin = dir
	for _, prog := range []string{"vzpkg", "pkg-cacher"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, prog), "vzpkg2/cmd/"+prog).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", prog, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Cacher is a pkg-cacher process started by a test.
type Cacher struct {
	URL  string // where it listens, http://127.0.0.1:port/
	Logs string // its log directory
}

// StartCacher starts the pkg-cacher binary in bin on a free loopback port,
// with a cache and log directory of its own and settings added to its
// command line, and waits until it answers. It is stopped with SIGTERM when
// the test ends.
func StartCacher(t testing.TB, bin string, settings ...string) *Cacher {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	c := &Cacher{URL: fmt.Sprintf("http://127.0.0.1:%d/", port), Logs: filepath.Join(dir, "log")}
	args := append([]string{"serve", "cache_dir=" + filepath.Join(dir, "cache"), "logdir=" + c.Logs, "daemon_addr=127.0.0.1",
		fmt.Sprint("daemon_port=", port)}, settings...)
	cmd := exec.Command(filepath.Join(bin, "pkg-cacher"), args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(c.URL)
		if err == nil {
			resp.Body.Close()
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("pkg-cacher does not answer: %v", err)
		}
	}
}

// Misses counts the requests pkg-cacher had to fetch upstream, as its
// access log shows them, whose URL satisfies match.
func (c *Cacher) Misses(t testing.TB, match func(url string) bool) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(c.Logs, "access.log"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) >= 6 && f[2] == "MISS" && match(f[5]) {
			n++
		}
	}
	return n
}
