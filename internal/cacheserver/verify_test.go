package cacheserver

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vzpkg2/internal/repotest"
)

// A mirror that sends a wrong by-hash file (one flipped byte, right size):
// the client's transfer fails, nothing is stored, and the next request gets
// the right bytes from the next mirror, then from the cache.
func TestWrongBytesFromOneMirror(t *testing.T) {
	good := []byte("Package: app\nVersion: 1.0\nFilename: pool/app_1.0_all.deb\n\n")
	sum := sha256.Sum256(good)
	rel := "dists/stable/main/binary-amd64/by-hash/SHA256/" + hex.EncodeToString(sum[:])
	bad := append([]byte(nil), good...)
	bad[10] ^= 1
	mirrors := []*repotest.Upstream{}
	for _, body := range [][]byte{bad, good} {
		root := t.TempDir()
		os.MkdirAll(filepath.Join(root, filepath.Dir(rel)), 0o755)
		os.WriteFile(filepath.Join(root, rel), body, 0o644)
		mirrors = append(mirrors, repotest.NewUpstream(t, root))
	}
	c := startCacher(t, mirrors[0].HostPort(), "",
		"allowed_locations="+mirrors[0].HostPort()+" "+mirrors[1].HostPort(),
		"path_map=local "+mirrors[0].HostPort()+" "+mirrors[1].HostPort())
	url := c.url("/local/" + rel)

	// The transfer fails: before the headers (a small file) or in the body.
	if resp, err := http.Get(url); err == nil {
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Fatalf("the wrong file was delivered as complete (%d bytes)", len(body))
		}
	}
	if n := countFiles(t, filepath.Join(c.dir, "blobs")); n != 0 {
		t.Fatalf("%d files stored after a wrong body, want 0", n)
	}
	for i, want := range []string{"MISS", "HIT"} {
		resp, body := get(t, url)
		if resp.StatusCode != 200 || string(body) != string(good) || resp.Header.Get("X-Cache") != want {
			t.Errorf("request %d after the failure: %s %s, %q; want %s with the right bytes", i+2, resp.Status, resp.Header.Get("X-Cache"), body, want)
		}
	}
	if _, m := get(t, c.url("/metrics")); !strings.Contains(string(m), "pkg_cacher_upstream_mismatches_total 1\n") ||
		!strings.Contains(string(m), `pkg_cacher_requests_total{status="HIT"} 1`) {
		t.Errorf("/metrics does not count the mismatch and the hit:\n%s", m)
	}
	if n0, n1 := mirrors[0].Count("/"+rel), mirrors[1].Count("/"+rel); n0 != 1 || n1 != 1 {
		t.Errorf("mirror requests: %d and %d, want 1 each (the bad mirror avoided after its wrong file)", n0, n1)
	}
}
