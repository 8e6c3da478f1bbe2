package cacheserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"vzpkg2/internal/repotest"
)

// onDebs applies mw to .deb requests only; indexes are served normally.
func onDebs(mw repotest.Middleware) repotest.Middleware {
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if !strings.HasSuffix(r.URL.Path, ".deb") {
			next.ServeHTTP(w, r)
			return
		}
		mw(w, r, next)
	}
}

// rewrite serves the file through change(body) with the given Content-Length
// (-1: the changed body's), flushing after half, then acting out end.
func rewrite(change func([]byte) []byte, length func(orig int) int, end func(w http.ResponseWriter)) repotest.Middleware {
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		rec := &bodyCapture{header: http.Header{}}
		next.ServeHTTP(rec, r)
		orig := rec.body.Bytes()
		body := change(append([]byte(nil), orig...))
		w.Header().Set("Content-Length", strconv.Itoa(length(len(orig))))
		w.Header().Set("Content-Type", "application/vnd.debian.binary-package")
		w.WriteHeader(200)
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		end(w)
		w.Write(body[len(body)/2:])
	}
}

func same(b []byte) []byte     { return b }
func origLen(n int) int        { return n }
func noop(http.ResponseWriter) {}

// hangUp closes the connection without finishing the response.
func hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
	panic(http.ErrAbortHandler)
}

// The first mirror of a path_map misbehaves in one way per case; a second
// mirror holds the same repository. Real apt either gets the right packages
// or fails cleanly, the store never holds a wrong byte, and once the first
// mirror is fixed the next apt run succeeds with nothing cleaned by hand.
func TestMisbehavingMirrorWithRealApt(t *testing.T) {
	root := t.TempDir()
	repo := repotest.BuildAptRepo(t, root, "stable", []repotest.Deb{
		{Name: "app", Version: "1.0-1", Depends: []string{"libbig"}, Size: 20 << 10},
		{Name: "libbig", Version: "2.0-1", Size: 1 << 20},
	})
	cases := []struct {
		name string
		mw   repotest.Middleware
		// firstRunOK: the client must get the packages at once (from the second mirror).
		firstRunOK bool
	}{
		{"truncated body", rewrite(same, origLen, hangUp), false},
		{"one flipped byte", rewrite(func(b []byte) []byte { b[len(b)-100] ^= 1; return b }, origLen, noop), false},
		{"Content-Length that lies", rewrite(func(b []byte) []byte { return append(b, make([]byte, 512)...) }, func(n int) int { return n + 512 }, noop), true},
		{"slow drip", rewrite(same, origLen, func(http.ResponseWriter) { time.Sleep(2500 * time.Millisecond) }), false},
		{"500", func(w http.ResponseWriter, r *http.Request, next http.Handler) { http.Error(w, "oops", 500) }, true},
		{"connection reset", func(w http.ResponseWriter, r *http.Request, next http.Handler) { hangUp(w) }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bad, good := repotest.NewUpstream(t, root), repotest.NewUpstream(t, root)
			bad.SetHandler(onDebs(tc.mw))
			c := startCacher(t, bad.HostPort(), "", "fetch_timeout=1",
				"allowed_locations="+bad.HostPort()+" "+good.HostPort(),
				"path_map=local "+bad.HostPort()+" "+good.HostPort())
			check := func(apt *repotest.AptClient) {
				t.Helper()
				for _, name := range []string{"app", "libbig"} {
					want, _ := os.ReadFile(filepath.Join(root, repo.Debs[name]))
					got, err := os.ReadFile(apt.Archives(t)[filepath.Base(repo.Debs[name])])
					if err != nil || !bytes.Equal(got, want) {
						t.Errorf("%s: apt holds a different file than the repository's (%v)", name, err)
					}
				}
			}

			apt := repotest.NewAptClient(t, repo.SourcesLine(c.url("/local")), "")
			apt.Update(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, err := apt.Run(ctx, "-q", "-y", "install", "--download-only", "app")
			switch {
			case err == nil:
				check(apt)
			case tc.firstRunOK:
				t.Fatalf("apt failed although a healthy mirror has the files: %v\n%s", err, out)
			}
			storeIsSound(t, c.dir)

			bad.SetHandler(nil)
			apt2 := repotest.NewAptClient(t, repo.SourcesLine(c.url("/local")), "")
			apt2.Update(t)
			apt2.DownloadOnly(t, "app")
			check(apt2)
			storeIsSound(t, c.dir)
		})
	}
}

// storeIsSound re-hashes every stored file: each must have the checksum it
// is stored under.
func storeIsSound(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(filepath.Join(dir, "blobs"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if sum := sha256.Sum256(data); err != nil || hex.EncodeToString(sum[:]) != d.Name() {
			t.Errorf("stored file %s does not have its checksum (%v)", p, err)
		}
		return nil
	})
}

// A .deb replaced upstream under the same name: the cached copy is served
// while the Packages index still lists it, and fetched again once a newer
// index promises the new bytes.
func TestDebReplacedUpstream(t *testing.T) {
	root := t.TempDir()
	debs := []repotest.Deb{{Name: "libbig", Version: "2.0-1", Size: 1 << 20}}
	repo := repotest.BuildAptRepo(t, root, "stable", debs)
	up := repotest.NewUpstream(t, root)
	c := startCacher(t, up.HostPort(), "", "volatile_ttl=0")
	deb := filepath.Join(root, repo.Debs["libbig"])
	download := func() []byte {
		t.Helper()
		apt := repotest.NewAptClient(t, repo.SourcesLine(c.url("/local")), "")
		apt.Update(t)
		apt.DownloadOnly(t, "libbig")
		got, err := os.ReadFile(apt.Archives(t)[filepath.Base(deb)])
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	first := download()

	// Rebuilt with other contents under the same name and version.
	debs[0].Size += 4096
	repo = repotest.BuildAptRepo(t, root, "stable", debs)
	// Within the same second as the first build: make the new indexes newer,
	// or If-Modified-Since revalidation cannot tell them apart.
	later := time.Now().Add(2 * time.Second)
	filepath.WalkDir(filepath.Join(root, "dists"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			os.Chtimes(p, later, later)
		}
		return nil
	})
	replaced, _ := os.ReadFile(filepath.Join(root, repo.Debs["libbig"]))
	if bytes.Equal(first, replaced) {
		t.Fatal("the rebuilt package has the same bytes")
	}
	if got := download(); !bytes.Equal(got, replaced) {
		t.Errorf("after the new index apt got %d bytes, want the replaced package's %d", len(got), len(replaced))
	}
	if n := up.Count("/" + repo.Debs["libbig"]); n != 2 {
		t.Errorf("upstream GETs of the package: %d, want 2 (the stale copy refetched once)", n)
	}
	storeIsSound(t, c.dir)
}
