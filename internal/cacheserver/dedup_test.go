package cacheserver

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"vzpkg2/internal/repotest"
)

// dirBytes sums the sizes of the regular files under dir.
func dirBytes(t *testing.T, dir string) (files int, bytes int64) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			fi, _ := d.Info()
			files++
			bytes += fi.Size()
		}
		return nil
	})
	return files, bytes
}

// One repository reached through two path_map names and the URL-prefix form
// (apt fetching its indexes by-hash) is stored once, and its packages are
// fetched once: the clients of the second and third name get them from the
// cache, since the metadata says they are the bytes it holds.
func TestSameRepositoryThroughSeveralNamesStoredOnce(t *testing.T) {
	root := t.TempDir()
	repo := repotest.BuildAptRepo(t, root, "stable", []repotest.Deb{
		{Name: "app", Version: "1.0-1", Depends: []string{"libbig"}, Size: 10 << 10},
		{Name: "libbig", Version: "2.1-1", Size: 4 << 20},
	})
	up := repotest.NewUpstream(t, root)
	c := startCacher(t, up.HostPort(), "", "path_map=local "+up.HostPort()+" ; mirror2 "+up.HostPort())
	blobs := filepath.Join(c.dir, "blobs")

	var oneCopy int64
	for i, base := range []string{"/local", "/mirror2", "/" + up.HostPort()} {
		apt := repotest.NewAptClient(t, repo.SourcesLine(c.url(base)), "")
		apt.Update(t)
		apt.DownloadOnly(t, "app")
		if len(apt.Archives(t)) != 2 {
			t.Fatalf("client %d through %s downloaded %v", i+1, base, apt.Archives(t))
		}
		if n := up.CountSuffix(".deb"); n != 2 {
			t.Errorf("after client %d through %s the upstream got %d .deb requests, want 2 (the first client's)", i+1, base, n)
		}
		_, size := dirBytes(t, blobs)
		if i == 0 {
			oneCopy = size
			if oneCopy < 4<<20 {
				t.Fatalf("the first client stored %d bytes, less than its packages", oneCopy)
			}
			continue
		}
		if size != oneCopy {
			t.Errorf("after client %d through %s the store holds %d bytes, want %d (one copy)", i+1, base, size, oneCopy)
		}
	}
	if n := up.CountContains("/by-hash/"); n == 0 {
		t.Error("apt fetched no index by-hash; the test does not cover by-hash keys")
	}
	// The URL-prefix form of a path_map mirror shares the map's keys, so two
	// sets of keys (local, mirror2) name the 4 files: InRelease, Packages, 2 debs.
	if entries, _ := dirBytes(t, filepath.Join(c.dir, "index")); entries != 2*4 {
		t.Errorf("%d index entries, want 8: 4 files under each of the two path_map names", entries)
	}
}

// The same for dnf: an RPM repository under two path_map names and the
// URL-prefix form; the second and third clients' packages come from the
// cache, and the access log says HIT.
func TestSameRPMRepositoryThroughSeveralNamesFetchedOnce(t *testing.T) {
	root := t.TempDir()
	repo := repotest.BuildRPMRepo(t, filepath.Join(root, "42"), testRPMs)
	up := repotest.NewUpstream(t, root)
	c := startCacher(t, up.HostPort(), "", "path_map=local "+up.HostPort()+" ; mirror2 "+up.HostPort())
	for i, base := range []string{"/local", "/mirror2", "/" + up.HostPort()} {
		dnf := repotest.NewDnfClient(t, "42", "", repo.Section("test", c.url(base+"/$releasever/")))
		dnf.Install(t, "app", "tool")
		if got := dnf.Installed(t); !slices.Equal(got, wantInstalled) {
			t.Errorf("client %d through %s installed %q, want %q", i+1, base, got, wantInstalled)
		}
		if n := up.CountSuffix(".rpm"); n != 4 {
			t.Errorf("after client %d through %s the upstream got %d .rpm requests, want 4 (the first client's)", i+1, base, n)
		}
	}
	var hits int
	for _, l := range c.accessLog(t) {
		if strings.HasPrefix(l, "HIT 200 ") && strings.HasSuffix(l, ".rpm") {
			hits++
		}
	}
	if hits != 8 {
		t.Errorf("access log has %d HIT records of packages, want 8 (4 for each later client)", hits)
	}
}

// A file every mirror answers 404 for is answered 404 for negative_ttl
// without asking again, then asked for again; negative_ttl=0 asks every time.
func TestMissingFileAskedOncePerNegativeTTL(t *testing.T) {
	up := repotest.NewUpstream(t, t.TempDir())
	const path = "/pool/main/m/missing/missing_1_all.deb"
	for _, tc := range []struct {
		ttl  string
		want int // upstream requests for 5 client requests
	}{{"2", 1}, {"0", 5}} {
		t.Run("negative_ttl="+tc.ttl, func(t *testing.T) {
			up.Reset()
			c := startCacher(t, up.HostPort(), "", "negative_ttl="+tc.ttl)
			for i := range 5 {
				if resp, _ := get(t, c.url("/local"+path)); resp.StatusCode != http.StatusNotFound {
					t.Errorf("request %d: got %d, want 404", i+1, resp.StatusCode)
				}
			}
			if n := up.Count(path); n != tc.want {
				t.Errorf("upstream got %d requests for 5 client requests, want %d", n, tc.want)
			}
			if tc.ttl == "0" {
				return
			}
			time.Sleep(2100 * time.Millisecond)
			get(t, c.url("/local"+path))
			if n := up.Count(path); n != 2 {
				t.Errorf("after negative_ttl the upstream got %d requests in all, want 2", n)
			}
		})
	}
}
