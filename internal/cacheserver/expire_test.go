package cacheserver

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vzpkg2/internal/cacheconf"
	"vzpkg2/internal/expire"
	"vzpkg2/internal/precache"
	"vzpkg2/internal/repotest"
	"vzpkg2/internal/store"
	"vzpkg2/internal/store/disk"
)

// serve runs a pkg-cacher for cfg on a free loopback port, logging to log
// when it is not nil, and returns its base URL and a stop function (also run
// when the test ends).
func serve(t *testing.T, cfg *cacheconf.Config, log ...*syncBuffer) (string, func()) {
	t.Helper()
	h := slog.DiscardHandler
	if len(log) > 0 {
		h = slog.NewTextHandler(log[0], nil)
	}
	srv, err := New(cfg, slog.New(h))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + ln.Addr().String(), run(t, srv, ln)
}

// expireAt runs one expiry pass over cfg's stopped cache at now, after
// clients asked for the files under keys at now.
func expireAt(t *testing.T, cfg *cacheconf.Config, now time.Time, dryRun bool, keys ...string) expire.Report {
	t.Helper()
	return expireVia(t, cfg, now, dryRun, false, keys...)
}

// expireVia is expireAt, running the pass as serve does when yielding:
// on a thread of its own, giving way to clients (served all the time).
func expireVia(t *testing.T, cfg *cacheconf.Config, now time.Time, dryRun, yielding bool, keys ...string) expire.Report {
	t.Helper()
	st, err := disk.Open(cfg.CacheDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	used := expire.NewUsage()
	if err := used.Load(UsagePath(cfg)); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		used.Touch(k, now)
	}
	var r expire.Report
	if yielding {
		var served uint64
		lowPriority(func() {
			r, err = pass(context.Background(), cfg, st, used, now, dryRun, newYielder(func() uint64 { served++; return served }))
		})
	} else {
		r, err = Expire(context.Background(), cfg, st, used, now, dryRun)
	}
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// cachedKeys lists the keys in cfg's stopped cache that end in suffix.
func cachedKeys(t *testing.T, cfg *cacheconf.Config, suffix string) []string {
	t.Helper()
	st, err := disk.Open(cfg.CacheDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var keys []string
	st.Walk(context.Background(), func(i store.Info) error {
		if strings.HasSuffix(i.Key, suffix) {
			keys = append(keys, i.Key)
		}
		return nil
	})
	slices.Sort(keys)
	return keys
}

// A package a newer Packages no longer lists goes once expire_days pass
// with nobody asking for it; the current packages stay however long nobody
// asks for them, while clients keep updating from the release. An index
// that failed to fetch removes nothing, and a dry run removes nothing.
func TestExpiryOfUnreferencedPackages(t *testing.T) {
	v1, v2 := t.TempDir(), t.TempDir()
	repo1 := repotest.BuildAptRepo(t, v1, "stable", []repotest.Deb{
		{Name: "app", Version: "1.0-1", Depends: []string{"lib"}, Size: 20 << 10},
		{Name: "lib", Version: "1.0-1", Size: 30 << 10},
	})
	repo2 := repotest.BuildAptRepo(t, v2, "stable", []repotest.Deb{
		{Name: "app", Version: "2.0-1", Depends: []string{"lib"}, Size: 20 << 10},
		{Name: "lib", Version: "1.0-1", Size: 30 << 10},
	})
	// v2 is published an hour after v1, as a mirror would (revalidation
	// goes by Last-Modified, to the second).
	filepath.WalkDir(v2, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			os.Chtimes(p, time.Now().Add(time.Hour), time.Now().Add(time.Hour))
		}
		return err
	})
	// The upstream serves v1, then v2, from one directory.
	root := filepath.Join(t.TempDir(), "mirror")
	if err := os.Symlink(v1, root); err != nil {
		t.Fatal(err)
	}
	up := repotest.NewUpstream(t, root)
	publish := func(dir string) {
		tmp := root + ".new"
		if err := os.Symlink(dir, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, root); err != nil {
			t.Fatal(err)
		}
	}
	oldDeb, newDeb := repo1.Debs["app"], repo2.Debs["app"]
	later := time.Now().Add(31 * 24 * time.Hour)

	for _, tc := range []struct {
		name     string
		breakUp  func(w http.ResponseWriter, r *http.Request, next http.Handler) // the upstream during the second update
		dryRun   bool
		wantGone bool
		yielding bool // the pass gives way to clients, as in serve
	}{
		{"newer Packages", nil, false, true, false},
		{"newer Packages, pass giving way", nil, false, true, true},
		{"newer Packages, dry run", nil, true, false, false},
		{"upstream fails the update", func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			http.Error(w, "broken", http.StatusInternalServerError)
		}, false, false, false},
		{"corrupt index", func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			if strings.Contains(r.URL.Path, "/binary-amd64/") { // Packages*, also by-hash
				w.Write([]byte("Package: garbage\nFilename: pool/x.deb\nSHA256: 00\n\n"))
				return
			}
			next.ServeHTTP(w, r)
		}, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			publish(v1)
			up.SetHandler(nil)
			cfg := testConfig(t, up.HostPort(), "", "volatile_ttl=0") // the second update sees v2
			base, stop := serve(t, cfg)
			apt := repotest.NewAptClient(t, repo1.SourcesLine(base+"/local"), "")
			apt.Update(t)
			apt.DownloadOnly(t, "app")

			publish(v2)
			up.SetHandler(tc.breakUp)
			apt2 := repotest.NewAptClient(t, repo2.SourcesLine(base+"/local"), "")
			if tc.breakUp == nil {
				apt2.Update(t)
				apt2.DownloadOnly(t, "app")
			} else {
				apt2.Run(context.Background(), "update") // fails, or refuses the index
			}
			stop()

			before := cachedKeys(t, cfg, ".deb")
			// A month later, clients still run apt-get update daily.
			r := expireVia(t, cfg, later, tc.dryRun, tc.yielding, "local:/dists/stable/InRelease")
			after := cachedKeys(t, cfg, ".deb")
			has := func(keys []string, rel string) bool { return slices.Contains(keys, "local:/"+rel) }
			if !has(before, oldDeb) {
				t.Fatalf("the old package %s was not cached: %q", oldDeb, before)
			}
			if has(after, oldDeb) == tc.wantGone {
				t.Errorf("after the pass the old package %s is cached: %v, want %v (removed %d files)", oldDeb, has(after, oldDeb), !tc.wantGone, len(r.Removed))
			}
			if !has(after, repo1.Debs["lib"]) || tc.breakUp == nil && !has(after, newDeb) {
				t.Errorf("current packages went: before %q, after %q", before, after)
			}
			if tc.dryRun && (len(r.Removed) == 0 || !slices.Equal(before, after)) {
				t.Errorf("dry run: reported %d files, cache went from %q to %q; want the old package reported and nothing removed", len(r.Removed), before, after)
			}
			if tc.wantGone && r.Freed < 20<<10 {
				t.Errorf("the pass freed %d bytes, want at least the old package's", r.Freed)
			}
		})
	}
}

// Over max_size, the least recently used files go first and the cache ends
// under the cap.
func TestSizeCapKeepsRecentlyUsed(t *testing.T) {
	root := t.TempDir()
	const n, size = 10, 100 << 10
	for i := range n {
		writeRandom(t, root, "/pool/f"+string(rune('0'+i))+".deb", size)
	}
	up := repotest.NewUpstream(t, root)
	cfg := testConfig(t, up.HostPort(), "", "max_size=450K", "expire_days=0")
	base, stop := serve(t, cfg)
	for i := range n {
		get(t, base+"/local/pool/f"+string(rune('0'+i))+".deb")
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	// Usage is kept to the hour: make the order of use plain.
	used := expire.NewUsage()
	for i := range n {
		used.Touch("local:/pool/f"+string(rune('0'+i))+".deb", time.Now().Add(time.Duration(i)*time.Hour))
	}
	if err := used.Save(UsagePath(cfg)); err != nil {
		t.Fatal(err)
	}
	expireAt(t, cfg, time.Now(), false)
	got := cachedKeys(t, cfg, ".deb")
	want := []string{"local:/pool/f6.deb", "local:/pool/f7.deb", "local:/pool/f8.deb", "local:/pool/f9.deb"}
	if !slices.Equal(got, want) {
		t.Errorf("after the pass the cache holds %q, want the 4 most recently used %q", got, want)
	}
	if _, bytes := dirBytes(t, filepath.Join(cfg.CacheDir, "blobs")); bytes > 450<<10 {
		t.Errorf("the cache's bodies take %d bytes, over max_size %d", bytes, 450<<10)
	}
}

// A full disk fails the fills that need space, cleanly for their clients
// and with nothing partial kept, while cached files are still served; it is
// logged once, not per request.
func TestDiskFull(t *testing.T) {
	dir := t.TempDir()
	cacheDir := filepath.Join(dir, "cache")
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", cacheDir, "tmpfs", 0, "size=2m"); err != nil {
		t.Skipf("needs root to mount a small tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(cacheDir, unix.MNT_DETACH) })
	root := t.TempDir()
	small := writeRandom(t, root, "/pool/small_1_all.deb", 10_000)
	writeRandom(t, root, "/pool/big_1_all.deb", 4<<20)
	up := repotest.NewUpstream(t, root)
	cfg := testConfig(t, up.HostPort(), dir)
	var log syncBuffer
	base, _ := serve(t, cfg, &log)
	if resp, _ := get(t, base+"/local/pool/small_1_all.deb"); resp.StatusCode != http.StatusOK {
		t.Fatalf("small file: got %d", resp.StatusCode)
	}
	for i := range 3 {
		resp, err := http.Get(base + "/local/pool/big_1_all.deb")
		if err == nil {
			var n int64
			n, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				t.Fatalf("request %d: got a whole-looking answer of %d bytes for a file the full disk cannot hold", i+1, n)
			}
		}
	}
	resp, body := get(t, base+"/local/pool/small_1_all.deb")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Cache") != "HIT" || !bytes.Equal(body, small) {
		t.Errorf("cached file on a full disk: got %d %s with %d bytes, want 200 HIT with %d", resp.StatusCode, resp.Header.Get("X-Cache"), len(body), len(small))
	}
	waitFor(t, "the failed fills' temp files to go", func() bool { return countFiles(t, filepath.Join(cacheDir, "tmp")) == 0 })
	if n := countFiles(t, filepath.Join(cacheDir, "blobs")); n != 1 {
		t.Errorf("the store holds %d bodies, want 1 (the small file; nothing partial)", n)
	}
	if n := strings.Count(log.String(), "disk is full"); n != 1 {
		t.Errorf("the log says the disk is full %d times, want once:\n%s", n, log.String())
	}
}

// Import adopts the package files whose bytes a cached index lists, skips
// those no index lists and leaves out those an index lists with other
// bytes; an adopted package is then never fetched.
func TestImport(t *testing.T) {
	root := t.TempDir()
	repo := repotest.BuildAptRepo(t, root, "stable", []repotest.Deb{
		{Name: "app", Version: "1.0-1", Depends: []string{"lib"}, Size: 20 << 10},
		{Name: "lib", Version: "1.0-1", Size: 30 << 10},
	})
	up := repotest.NewUpstream(t, root)
	dir := t.TempDir()
	cfg := testConfig(t, up.HostPort(), dir)
	base, stop := serve(t, cfg)
	apt := repotest.NewAptClient(t, repo.SourcesLine(base+"/local"), "")
	apt.Update(t)
	stop()

	from := t.TempDir() // as in /var/cache/apt/archives
	copyFile := func(rel, name string, cut int) {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(from, name), b[:len(b)-cut], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(repo.Debs["app"], filepath.Base(repo.Debs["app"]), 0)
	copyFile(repo.Debs["lib"], filepath.Base(repo.Debs["lib"]), 100) // truncated
	writeRandom(t, from, "other_1_all.deb", 5000)
	st, err := disk.Open(cfg.CacheDir)
	if err != nil {
		t.Fatal(err)
	}
	fates := map[string]string{}
	r, err := Import(context.Background(), st, []string{from}, slog.New(slog.DiscardHandler), func(file, fate string) { fates[filepath.Base(file)] = fate })
	st.Close()
	if err != nil || r.Adopted != 1 || r.Skipped != 1 || r.Corrupt != 1 {
		t.Fatalf("import: %+v, %v (%q); want 1 adopted, 1 skipped, 1 corrupt", r, err, fates)
	}
	if fates[filepath.Base(repo.Debs["app"])] != "adopted" || fates[filepath.Base(repo.Debs["lib"])] != "corrupt" {
		t.Errorf("fates %q: want app adopted, the truncated lib corrupt", fates)
	}

	up.Reset()
	base, _ = serve(t, cfg)
	apt = repotest.NewAptClient(t, repo.SourcesLine(base+"/local"), "")
	apt.Update(t)
	apt.DownloadOnly(t, "app")
	if n := up.Count("/" + repo.Debs["app"]); n != 0 {
		t.Errorf("the upstream got %d requests for the adopted package, want 0", n)
	}
	if n := up.Count("/" + repo.Debs["lib"]); n != 1 {
		t.Errorf("the upstream got %d requests for the package whose copy was corrupt, want 1", n)
	}
}

// Precache fetches through pkg-cacher what an index lists for the names
// given; an install afterwards fetches no package from upstream.
func TestPrecache(t *testing.T) {
	root := t.TempDir()
	repo := repotest.BuildAptRepo(t, root, "stable", []repotest.Deb{
		{Name: "app", Version: "1.0-1", Depends: []string{"lib"}, Size: 20 << 10},
		{Name: "lib", Version: "1.0-1", Size: 30 << 10},
		{Name: "other", Version: "1", Size: 1 << 10},
	})
	up := repotest.NewUpstream(t, root)
	base, _ := serve(t, testConfig(t, up.HostPort(), ""))
	var seen []string
	r, err := precache.Run(context.Background(), http.DefaultClient, base+"/local/dists/stable/main/binary-amd64/Packages.xz",
		[]string{"app", "lib", "nope"}, func(done, total int, file string) {
			if file != "" {
				seen = append(seen, file)
			}
		})
	if err != nil || r.Fetched != 2 || !slices.Equal(r.Missing, []string{"nope"}) || len(seen) != 2 {
		t.Fatalf("precache: %+v, %v, progress %q; want 2 fetched, nope missing", r, err, seen)
	}
	up.Reset()
	apt := repotest.NewAptClient(t, repo.SourcesLine(base+"/local"), "")
	apt.Update(t)
	apt.DownloadOnly(t, "app")
	if n := up.CountSuffix(".deb"); n != 0 {
		t.Errorf("after precache, installing app fetched %d packages from upstream, want 0", n)
	}
}
