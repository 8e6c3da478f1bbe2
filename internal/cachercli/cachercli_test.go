package cachercli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vzpkg2/internal/completion"
	"vzpkg2/internal/manpage"
	"vzpkg2/internal/store"
	"vzpkg2/internal/store/disk"
)

var update = flag.Bool("update", false, "rewrite docs/man/pkg-cacher*.8 and etc/completions/*/*pkg-cacher* from the command tree")

// TestManPagesAreCurrent fails when docs/man/pkg-cacher*.8 no longer match
// the command tree; `go test ./internal/cachercli -update` regenerates them.
func TestManPagesAreCurrent(t *testing.T) {
	manpage.Check(t, New(), "../../docs/man", *update, "go test ./internal/cachercli -update")
}

func execute(ctx context.Context, args ...string) (string, error) {
	cmd := New()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

func TestServeRejectsBadConfig(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "pkg-cacher.conf")
	os.WriteFile(conf, []byte("cache_dir = /tmp/x\ndeamon_port = 3142\n"), 0o644)
	_, err := execute(context.Background(), "serve", "-c", conf)
	if err == nil || !strings.HasPrefix(err.Error(), conf+":2:") || !strings.Contains(err.Error(), "daemon_port") {
		t.Fatalf("got %v, want %s:2: naming daemon_port as the fix", err, conf)
	}
	_, err = execute(context.Background(), "serve", "-c", conf+".missing")
	if err == nil {
		t.Fatal("a missing config file was accepted")
	}
	_, err = execute(context.Background(), "serve", "daemon_port=notaport")
	if err == nil || !strings.Contains(err.Error(), "daemon_port") {
		t.Fatalf("got %v for a bad override", err)
	}
}

// TestServeRunsUntilCancelled starts the real command on a free loopback port,
// checks that clients can find it, and stops it as SIGTERM would.
func TestServeRunsUntilCancelled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := execute(ctx, "serve", "cache_dir="+dir, "logdir="+dir, "daemon_addr=127.0.0.1", fmt.Sprint("daemon_port=", port))
		done <- err
	}()
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	var resp *http.Response
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if resp, err = http.Get(url); err == nil {
			break
		}
	}
	if err != nil {
		cancel()
		t.Fatalf("pkg-cacher never answered: %v (serve: %v)", err, <-done)
	}
	resp.Body.Close()
	if resp.StatusCode != 406 {
		t.Errorf("usage page answered %s, want 406 (auto-apt-proxy's detection)", resp.Status)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v after cancel", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop after cancel")
	}
	if _, err := http.Get(url); err == nil {
		t.Error("still answering after stop")
	}
}

func TestVersion(t *testing.T) {
	out, err := execute(context.Background(), "version")
	if err != nil || !strings.HasPrefix(out, "pkg-cacher ") {
		t.Fatalf("version printed %q, %v", out, err)
	}
}

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	st, err := disk.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	w, _ := st.Create(ctx, "deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb")
	w.Write([]byte("a package body"))
	info, err := w.Commit(ctx, store.Info{})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	st.Close()

	out, err := execute(ctx, "verify", "cache_dir="+dir)
	if err != nil || !strings.Contains(out, "1 files, 14 bytes checked: 0 problems") {
		t.Fatalf("verify of an intact cache: %q, %v", out, err)
	}
	blob := filepath.Join(dir, "blobs", info.SHA256[:2], info.SHA256)
	os.WriteFile(blob, []byte("a package bodY"), 0o644)
	out, err = execute(ctx, "verify", "cache_dir="+dir)
	if err == nil || !strings.Contains(out, "hello_2.10-3_amd64.deb: its blob is damaged") {
		t.Fatalf("verify of a damaged cache: %q, %v", out, err)
	}
	out, err = execute(ctx, "verify", "--repair", "cache_dir="+dir)
	if err != nil || !strings.Contains(out, "removed") {
		t.Fatalf("verify --repair: %q, %v", out, err)
	}
	if out, err = execute(ctx, "verify", "cache_dir="+dir); err != nil || !strings.Contains(out, "0 problems") {
		t.Fatalf("verify after repair: %q, %v", out, err)
	}
}

// TestExpireCommand: --dry-run lists what would go and removes nothing;
// without it the file goes, with its body.
func TestExpireCommand(t *testing.T) {
	dir := t.TempDir()
	st, err := disk.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for key, age := range map[string]time.Duration{"h/pool/old.deb": 40 * 24 * time.Hour, "h/pool/recent.deb": time.Hour} {
		w, _ := st.Create(context.Background(), key)
		w.Write([]byte("the body of " + key))
		if _, err := w.Commit(context.Background(), store.Info{Validated: time.Now().Add(-age)}); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	st.Close()
	blobs := func() int {
		n := 0
		filepath.WalkDir(filepath.Join(dir, "blobs"), func(_ string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
			}
			return nil
		})
		return n
	}
	out, err := execute(context.Background(), "expire", "--dry-run", "cache_dir="+dir)
	if err != nil || !strings.Contains(out, "h/pool/old.deb\t26\n") || !strings.Contains(out, "dry run: 1 files would go, freeing 26 bytes") || blobs() != 2 {
		t.Errorf("expire --dry-run: %q, %v, %d bodies left; want old.deb listed and both bodies kept", out, err, blobs())
	}
	out, err = execute(context.Background(), "expire", "cache_dir="+dir)
	if err != nil || !strings.Contains(out, "1 files removed, 26 bytes freed; 1 files (29 bytes) kept") || blobs() != 1 {
		t.Errorf("expire: %q, %v, %d bodies left; want old.deb removed with its body", out, err, blobs())
	}
}

// TestCompletionsAreCurrent fails when etc/completions/*/pkg-cacher* no
// longer match the command tree; `go test ./internal/cachercli -update`
// rewrites them.
func TestCompletionsAreCurrent(t *testing.T) {
	completion.Check(t, New(), "../../etc/completions", *update, "go test ./internal/cachercli -update")
}

// TestKeysComplete: `pkg-cacher serve daemon_p<TAB>` offers the key, ready
// for its value.
func TestKeysComplete(t *testing.T) {
	out, err := execute(context.Background(), "__complete", "serve", "daemon_p")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "daemon_port=\tlisten port\n") || strings.Contains(out, "cache_dir") {
		t.Errorf("got %q, want daemon_port= alone", out)
	}
}
