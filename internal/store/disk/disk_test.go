package disk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"vzpkg2/internal/store"
	"vzpkg2/internal/store/storetest"
)

func open(t *testing.T, root string) *Store {
	t.Helper()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, t.TempDir()) })
}

func put(t *testing.T, s *Store, key, body string) store.Info {
	t.Helper()
	ctx := context.Background()
	w, _ := s.Create(ctx, key)
	w.Write([]byte(body))
	info, err := w.Commit(ctx, store.Info{})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	return info
}

func countBlobs(t *testing.T, root string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(filepath.Join(root, "blobs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// crashed makes root's record say the store was not closed, as after a
// crash (Close writes a clean one).
func crashed(t *testing.T, root string) {
	t.Helper()
	stamp := time.Now().Add(-time.Hour).UTC().Format(stampLayout)
	if err := os.WriteFile(filepath.Join(root, syncedFile), []byte(stamp+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A crash leaves temp files, and between the blob's rename and the index
// entry's a blob no key names. A restart serves neither; it removes the
// temp files, and the next collection the blob.
func TestRestartAfterCrash(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := s.Create(ctx, "partial")
	w.Write([]byte("half a fi"))
	// The process dies here: no Commit, no Cancel.
	put(t, s, "whole", "complete body")
	gone := put(t, s, "gone", "body whose blob was lost")
	// A blob renamed into place whose index entry was never written.
	sum := sha256.Sum256([]byte("orphan"))
	orphan := s.blobPath(hex.EncodeToString(sum[:]))
	os.MkdirAll(filepath.Dir(orphan), 0o755)
	os.WriteFile(orphan, []byte("orphan"), 0o644)
	// A blob damaged on disk (truncated).
	os.Truncate(s.blobPath(gone.SHA256), 3)
	os.MkdirAll(filepath.Join(root, "objects/ab"), 0o755) // the 0.1.0 layout
	s.Close()                                             // releases the lock; the record of a clean close is undone below
	crashed(t, root)

	s2 := open(t, root)
	if left, _ := os.ReadDir(filepath.Join(root, "tmp")); len(left) != 0 {
		t.Errorf("temp area holds %d leftovers after restart, want 0", len(left))
	}
	if _, err := s2.Open(ctx, "partial"); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("partial write visible after restart: %v", err)
	}
	if _, err := s2.Open(ctx, "gone"); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("truncated blob served: %v", err)
	}
	if s2.Recovery().Clean || !s2.Recovery().CollectDue {
		t.Errorf("after a crash the store says %+v: nobody collects the blob it left", s2.Recovery())
	}
	// Closed cleanly before a collection: the next Open still says one is due.
	s2.Close()
	s2 = open(t, root)
	if !s2.Recovery().CollectDue {
		t.Error("a store closed before its collection after a crash no longer says one is due")
	}
	if n, _, err := s2.GC(ctx); err != nil || n != 1 {
		t.Errorf("GC after restart removed %d blobs, %v; want the orphan", n, err)
	}
	s2.Close()
	if s2 = open(t, root); s2.Recovery().CollectDue {
		t.Error("a collection is still due after GC")
	}
	if _, err := os.Stat(orphan); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unreferenced blob kept after restart: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "objects")); !errors.Is(err, os.ErrNotExist) {
		t.Error("the old objects/ layout was not removed")
	}
	if info, err := s2.Stat(ctx, "whole"); err != nil || info.Size != int64(len("complete body")) {
		t.Errorf("committed object after restart: got %+v, %v", info, err)
	}
}

// The same bytes under several keys are stored once; the blob goes when the
// last key does.
func TestSameBytesStoredOnce(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s := open(t, root)
	body := strings.Repeat("package bytes ", 1000)
	a := put(t, s, "deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", body)
	b := put(t, s, "debian:/pool/main/h/hello/hello_2.10-3_amd64.deb", body)
	put(t, s, "other", "other bytes")
	if a.SHA256 != b.SHA256 || countBlobs(t, root) != 2 {
		t.Fatalf("two keys with the same bytes: %d blobs, want 2 (one shared)", countBlobs(t, root))
	}
	s.Delete(ctx, a.Key)
	if n, _, _ := s.GC(ctx); n != 0 {
		t.Errorf("GC removed %d blobs still referenced", n)
	}
	if o, err := s.Open(ctx, b.Key); err != nil {
		t.Fatalf("the other key lost its body: %v", err)
	} else {
		o.Close()
	}
	s.Delete(ctx, b.Key)
	put(t, s, "other", "replaced bytes") // the old "other" blob is unreferenced now
	if n, freed, err := s.GC(ctx); err != nil || n != 2 || freed != int64(len(body)+len("other bytes")) {
		t.Errorf("GC: removed %d blobs, %d bytes, %v; want 2 and %d", n, freed, err, len(body)+len("other bytes"))
	}
}

// TestCollectionCountsItsWalk: a Collection removes the blobs no entry its
// Walk showed references (less the entries the caller deleted), keeps the
// blobs committed while it runs, and removes nothing after a Walk that did
// not end.
func TestCollectionCountsItsWalk(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s := open(t, root)
	shared := strings.Repeat("shared bytes ", 100)
	a := put(t, s, "a", shared)
	put(t, s, "b", shared)
	c := put(t, s, "c", "bytes of c only")
	put(t, s, "orphan", "bytes no key will name")
	s.Delete(ctx, "orphan")
	put(t, s, "reused", "bytes a key names again")
	s.Delete(ctx, "reused")

	gc := s.StartGC()
	var during store.Info
	if err := gc.Walk(ctx, func(info store.Info) error {
		if during.Key == "" {
			during = put(t, s, "during", "committed while the walk reads")
			put(t, s, "reused", "bytes a key names again")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "c"} {
		if err := s.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	n, freed, err := gc.Finish([]store.Info{a, c})
	if want := int64(len("bytes of c only") + len("bytes no key will name")); err != nil || n != 2 || freed != want {
		t.Errorf("Finish: removed %d blobs, %d bytes, %v; want 2 (c's and the orphan), %d bytes", n, freed, err, want)
	}
	for _, k := range []string{"b", "during", "reused"} {
		if o, err := s.Open(ctx, k); err != nil {
			t.Errorf("%s lost its body: %v", k, err)
		} else {
			o.Close()
		}
	}

	put(t, s, "orphan", "bytes no key will name")
	s.Delete(ctx, "orphan")
	gc = s.StartGC()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := gc.Walk(cancelled, func(store.Info) error { return nil }); err == nil {
		t.Fatal("a Walk with its context cancelled ended well")
	}
	if n, _, err := gc.Finish(nil); n != 0 || err != nil {
		t.Errorf("Finish after a Walk that did not end: removed %d blobs, %v; want none", n, err)
	}
	if n, _, _ := s.GC(ctx); n != 1 {
		t.Errorf("GC after: removed %d blobs, want the orphan", n)
	}
}

func TestOneProcessPerDirectory(t *testing.T) {
	root := t.TempDir()
	open(t, root)
	_, err := Open(root)
	if err == nil || !strings.Contains(err.Error(), "in use by another pkg-cacher") {
		t.Errorf("second Open of the same directory: got %v, want an in-use error", err)
	}
}

func TestVerifyFindsAndRepairsDamage(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s := open(t, root)
	good := put(t, s, "good", "intact body")
	bad := put(t, s, "bad", "body to be damaged")
	put(t, s, "bad-too", "body to be damaged") // same blob, second key
	blob := s.blobPath(bad.SHA256)
	data, _ := os.ReadFile(blob)
	data[3] ^= 0x20 // one flipped bit, same size
	os.WriteFile(blob, data, 0o644)

	r, err := s.Verify(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, p := range r.Problems {
		keys[p.Key] = true
	}
	if r.Blobs != 2 || len(r.Problems) != 3 || !keys["bad"] || !keys["bad-too"] || keys["good"] {
		t.Fatalf("verify: %d blobs, problems %+v; want 2 blobs and the damaged blob with both its keys", r.Blobs, r.Problems)
	}
	if _, err := os.Stat(blob); err != nil {
		t.Error("verify without repair removed the blob")
	}
	if _, err := s.Verify(ctx, true); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"bad", "bad-too"} {
		if _, err := s.Open(ctx, k); !errors.Is(err, store.ErrNotExist) {
			t.Errorf("%s still served after repair: %v", k, err)
		}
	}
	if o, err := s.Open(ctx, good.Key); err != nil {
		t.Errorf("repair lost the intact body: %v", err)
	} else {
		o.Close()
	}
	if r, _ := s.Verify(ctx, false); len(r.Problems) != 0 {
		t.Errorf("after repair: %+v", r.Problems)
	}
}

// Small bodies are served from memory after their first read; the read
// checks the bytes against the blob's name, so damage on disk is never
// copied into memory and served.
func TestDamagedSmallBodyNotServed(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	info := put(t, s, "small", "a small body damaged before its first read")
	blob := s.blobPath(info.SHA256)
	data, _ := os.ReadFile(blob)
	data[0] ^= 0x01
	os.WriteFile(blob, data, 0o644)
	if o, err := s.Open(ctx, "small"); !errors.Is(err, store.ErrNotExist) {
		b, _ := io.ReadAll(o)
		t.Fatalf("damaged body served: %q, %v", b, err)
	}
	data[0] ^= 0x01 // repaired on disk: served again
	os.WriteFile(blob, data, 0o644)
	o, err := s.Open(ctx, "small")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if b, _ := io.ReadAll(o); string(b) != "a small body damaged before its first read" {
		t.Errorf("got %q", b)
	}
}

// abandon drops s as a crash would: no final sync, no record of one.
func (s *Store) abandon() {
	s.closeOnce.Do(func() {
		s.stopFlusher()
		if s.log.f != nil {
			s.log.f.Close()
		}
		s.lock.Close()
	})
}

// Commits are made durable by a sync at most flushEvery later. A body torn by
// a power loss before that sync is found when the store opens again, and its
// key is fetched anew; bodies intact stay.
func TestBodyTornBeforeSyncIsDropped(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s := open(t, root)
	old := put(t, s, "old", strings.Repeat("synced before the crash ", 4096))
	past := time.Now().Add(-time.Minute) // as if the clients came a while later
	os.Chtimes(s.blobPath(old.SHA256), past, past)
	if err := s.flush(false, ""); err != nil {
		t.Fatal(err)
	}
	put(t, s, "intact", strings.Repeat("written just before the crash, intact ", 4096))
	torn := put(t, s, "torn", strings.Repeat("written just before the crash ", 4096))
	s.abandon()
	p := s.blobPath(torn.SHA256)
	data, _ := os.ReadFile(p)
	copy(data[len(data)/2:], make([]byte, 4096)) // a block never written
	os.WriteFile(p, data, 0o644)

	s = open(t, root)
	if r := s.Recovery(); r.Checked != 2 || r.Removed != 1 {
		t.Errorf("recovery %+v, want the 2 blobs written since the sync checked and 1 removed", r)
	}
	if o, err := s.Open(ctx, "torn"); !errors.Is(err, store.ErrNotExist) {
		o.Close()
		t.Fatalf("a body torn before the sync is served after restart: %v", err)
	}
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the torn blob is still on disk: %v", err)
	}
	for _, k := range []string{"old", "intact"} {
		if o, err := s.Open(ctx, k); err != nil {
			t.Errorf("%s: lost after the crash: %v", k, err)
		} else {
			o.Close()
		}
	}
}

// BenchmarkCommit is the store's cost per new file: create, write 100 KB,
// commit (blob and index entry).
func BenchmarkCommit(b *testing.B) {
	ctx := context.Background()
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	body := make([]byte, 100<<10)
	b.SetBytes(int64(len(body)))
	for i := 0; b.Loop(); i++ {
		w, err := s.Create(ctx, fmt.Sprintf("host/pool/p%d.deb", i))
		if err != nil {
			b.Fatal(err)
		}
		body[0], body[1], body[2] = byte(i), byte(i>>8), byte(i>>16)
		w.Write(body)
		if _, err := w.Commit(ctx, store.Info{}); err != nil {
			b.Fatal(err)
		}
		w.Close()
	}
}

// Running out of descriptors is an error, never "not in store": a miss
// would start a download of a file the cache holds.
func TestOutOfDescriptorsIsNotAMiss(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	put(t, s, "big", strings.Repeat("x", smallBodyMax+1))
	s.Close()
	s = open(t, root) // nothing in memory: Open reads the index entry

	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = uint64(len(entries) + 16)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	var held []*os.File
	defer func() {
		for _, f := range held {
			f.Close()
		}
	}()
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		held = append(held, f)
	}
	_, err = s.Open(context.Background(), "big")
	if err == nil || errors.Is(err, store.ErrNotExist) || !errors.Is(err, syscall.EMFILE) {
		t.Errorf("Open with no descriptor left: got %v, want an EMFILE error that is not ErrNotExist", err)
	}
}

// walk returns what Walk shows, by key.
func walk(t *testing.T, s *Store) map[string]store.Info {
	t.Helper()
	got := map[string]store.Info{}
	err := s.Walk(context.Background(), func(info store.Info) error {
		if _, dup := got[info.Key]; dup {
			t.Errorf("Walk showed %q twice", info.Key)
		}
		got[info.Key] = info
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// Walk and GC read the index from index.pack and index.log when a clean
// close left them (see pack.go). Whatever happened to the store before a
// restart, Walk shows exactly the stored entries, as they were last
// written, and GC keeps every body a key names.
func TestWalkShowsTheIndexAfterRestart(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		end  func(t *testing.T, s *Store, root string, want map[string]store.Info)
	}{
		{"closed", func(t *testing.T, s *Store, root string, want map[string]store.Info) { s.Close() }},
		{"crashed", func(t *testing.T, s *Store, root string, want map[string]store.Info) { s.abandon() }},
		{"an older version changed the index", func(t *testing.T, s *Store, root string, want map[string]store.Info) {
			s.Close()
			// An older pkg-cacher keeps only index/ and closes with a
			// record that names no token.
			old := open(t, root)
			old.log.mu.Lock()
			old.dropLog()
			old.log.mu.Unlock()
			info := put(t, old, "by an older version", "its body")
			old.Delete(ctx, "k3")
			old.Close()
			want["by an older version"] = info
			delete(want, "k3")
		}},
		{"index.pack damaged", func(t *testing.T, s *Store, root string, want map[string]store.Info) {
			s.Close()
			p := filepath.Join(root, packFile)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.SplitN(string(b), "\n", 3)
			lines[1] = "{not a record"
			os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o644)
		}},
		{"verify repaired damage", func(t *testing.T, s *Store, root string, want map[string]store.Info) {
			os.WriteFile(s.blobPath(want["k7"].SHA256), []byte("damaged"), 0o644)
			if _, err := s.Verify(ctx, true); err != nil {
				t.Fatal(err)
			}
			delete(want, "k7")
			s.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			want := map[string]store.Info{}
			// A first life: the two files are written and then kept.
			s := open(t, root)
			for i := range 10 {
				k := fmt.Sprintf("k%d", i)
				want[k] = put(t, s, k, "body of "+k)
			}
			s.Walk(ctx, func(store.Info) error { // the first: it reads index/
				if k := "during the first walk"; want[k].Key == "" {
					want[k] = put(t, s, k, "body of "+k)
				}
				return nil
			})
			s.Close()
			// A second life, on the two files: changes of every kind,
			// enough for the log to be folded into the pack, and Walks
			// between them.
			s = open(t, root)
			for i := range 40 {
				k := fmt.Sprintf("k%d", i%15)
				switch i % 4 {
				case 0, 1:
					want[k] = put(t, s, k, fmt.Sprintf("body %d of %s", i, k))
				case 2:
					if info, ok := want[k]; ok {
						info.ETag = fmt.Sprintf("etag %d", i)
						if err := s.SetInfo(ctx, info); err != nil {
							t.Fatal(err)
						}
						want[k] = info
					}
				case 3:
					s.Delete(ctx, k)
					delete(want, k)
				}
				if i%10 == 9 {
					if got := walk(t, s); !maps.EqualFunc(got, want, infoEqual) {
						t.Fatalf("after %d changes Walk shows %v, want %v", i+1, got, want)
					}
				}
				if i == 8 { // a change while a Walk reads (and folds the log)
					s.Walk(ctx, func(store.Info) error {
						if k := "during a walk"; want[k].Key == "" {
							want[k] = put(t, s, k, "body of "+k)
						}
						return nil
					})
				}
			}
			link, err := s.Link(ctx, "linked", want["k6"])
			if err != nil {
				t.Fatal(err)
			}
			want["linked"] = link
			tc.end(t, s, root, want)

			s = open(t, root)
			if got := walk(t, s); !maps.EqualFunc(got, want, infoEqual) {
				t.Errorf("after a restart Walk shows %v, want %v", got, want)
			}
			if _, _, err := s.GC(ctx); err != nil {
				t.Fatal(err)
			}
			for k, info := range want {
				if got, err := s.Stat(ctx, k); err != nil || !infoEqual(got, info) {
					t.Errorf("%s after GC: got %+v, %v, want %+v", k, got, err, info)
				}
			}
		})
	}
}

func infoEqual(a, b store.Info) bool {
	return a.Key == b.Key && a.Size == b.Size && a.SHA256 == b.SHA256 && a.ETag == b.ETag && a.Validated.Equal(b.Validated)
}
