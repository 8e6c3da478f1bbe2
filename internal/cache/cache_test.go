package cache_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"vzpkg2/internal/cache"
	"vzpkg2/internal/repofmt"
	"vzpkg2/internal/repotest"
	"vzpkg2/internal/store"
	"vzpkg2/internal/store/disk"
	"vzpkg2/internal/upstream"
)

// Each class is revalidated after its own window: metalink answers after
// cache.MirrorListTTL, indexes after volatile_ttl, packages never.
func TestFreshnessByClass(t *testing.T) {
	root := t.TempDir()
	for _, name := range []string{"metalink", "repodata/repomd.xml", "Packages/a-1-1.noarch.rpm"} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	up := repotest.NewUpstream(t, root)
	st, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.DiscardHandler)
	now := time.Now()
	var after atomic.Int64 // since the fill
	c := cache.New(st, newUpstream(t, upstream.Options{ConnectTimeout: 5 * time.Second, StallTimeout: 5 * time.Second, Logger: log}),
		cache.Options{Tunables: cache.Tunables{VolatileTTL: 30 * time.Second}, Logger: log, Now: func() time.Time { return now.Add(time.Duration(after.Load())) }})

	files := []struct {
		path, query string
	}{
		{"/metalink", "repo=fedora-42&arch=x86_64"},
		{"/repodata/repomd.xml", ""},
		{"/Packages/a-1-1.noarch.rpm", ""},
	}
	for _, step := range []struct {
		after time.Duration  // since the fill
		want  []cache.Status // for each of files
	}{
		{0, []cache.Status{cache.Miss, cache.Miss, cache.Miss}},
		{cache.MirrorListTTL - time.Second, []cache.Status{cache.Hit, cache.Hit, cache.Hit}},
		{cache.MirrorListTTL + time.Second, []cache.Status{cache.Revalidated, cache.Hit, cache.Hit}},
		{31 * time.Second, []cache.Status{cache.Revalidated, cache.Revalidated, cache.Hit}},
	} {
		for i, f := range files {
			after.Store(int64(step.after))
			key := up.HostPort() + f.path + "?" + f.query
			res, err := c.Get(t.Context(), cache.Request{Key: key, URLs: []string{up.URL() + f.path + "?" + f.query}, Class: repofmt.Classify(f.path, f.query)})
			if err != nil {
				t.Fatalf("%v after the fill: %s: %v", step.after, f.path, err)
			}
			if res.Body != nil {
				drain(t, res.Body)
			}
			res.Close()
			if res.Status != step.want[i] {
				t.Errorf("%v after the fill: %s?%s: got %s, want %s", step.after, f.path, f.query, res.Status, step.want[i])
			}
		}
	}
}

// drain reads b to its end, which comes once the fill is committed.
func drain(t *testing.T, b *cache.Body) {
	t.Helper()
	buf := make([]byte, 4096)
	var off int64
	for {
		n, err := b.ReadAtContext(t.Context(), buf, off)
		off += int64(n)
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("read fill: %v", err)
		}
	}
}

// Close stops a fill under way without storing anything, so the store can
// be closed after it, and later misses are refused.
func TestCloseStopsFills(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "a.deb"), make([]byte, 1<<20), 0o644)
	up := repotest.NewUpstream(t, root)
	stall := make(chan struct{})
	defer close(stall)
	up.SetHandler(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		w.Header().Set("Content-Length", "1048576")
		w.Write(make([]byte, 1000))
		w.(http.Flusher).Flush()
		<-stall
	})
	st, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.DiscardHandler)
	c := cache.New(st, newUpstream(t, upstream.Options{ConnectTimeout: 5 * time.Second, StallTimeout: time.Minute, Logger: log}), cache.Options{Logger: log})
	req := cache.Request{Key: up.HostPort() + "/a.deb", URLs: []string{up.URL() + "/a.deb"}, Class: repofmt.Immutable}
	res, err := c.Get(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return while a fill was stalled")
	}
	res.Close()
	if _, err := st.Stat(t.Context(), req.Key); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("a fill stopped by Close was stored: %v", err)
	}
	if _, err := c.Get(t.Context(), req); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("Get after Close: %v, want cache.ErrClosed", err)
	}
}

// Clients asking for a file while another's download of it is under way
// are served from that download, and say so: JOINED, not MISS, so that a
// fleet's hit ratio counts one fetch for the fleet.
func TestJoinersAreNotMisses(t *testing.T) {
	root := t.TempDir()
	body := make([]byte, 64<<10)
	os.WriteFile(filepath.Join(root, "a.deb"), body, 0o644)
	up := repotest.NewUpstream(t, root)
	release := make(chan struct{})
	up.SetHandler(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body[:1000])
		w.(http.Flusher).Flush()
		<-release
		w.Write(body[1000:])
	})
	st, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.DiscardHandler)
	c := cache.New(st, newUpstream(t, upstream.Options{ConnectTimeout: 5 * time.Second, StallTimeout: time.Minute, Logger: log}), cache.Options{Logger: log})
	t.Cleanup(func() { c.Close() })
	req := cache.Request{Key: up.HostPort() + "/a.deb", URLs: []string{up.URL() + "/a.deb"}, Class: repofmt.Immutable}
	var results []*cache.Result
	for range 3 {
		res, err := c.Get(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, res)
	}
	close(release)
	for i, res := range results {
		if res.Body == nil {
			t.Fatalf("client %d: status %s without a download", i, res.Status)
		}
		drain(t, res.Body)
		res.Close()
		if want := map[bool]cache.Status{true: cache.Miss, false: cache.Joined}[i == 0]; res.Status != want {
			t.Errorf("client %d: %s, want %s", i, res.Status, want)
		}
	}
	if n := up.Count("/a.deb"); n != 1 {
		t.Errorf("upstream asked %d times, want once", n)
	}
}

func newUpstream(t *testing.T, o upstream.Options) *upstream.Client {
	t.Helper()
	c, err := upstream.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
