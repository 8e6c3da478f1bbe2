// Package disk is a content-addressed store.Store on a local file system.
//
// Layout under the root directory:
//
//	blobs/<hh>/<sha256>         bodies, named by the SHA-256 of their bytes
//	index/<hh>/<sha256(key)>    JSON store.Info of the key; its SHA256 names the blob
//	tmp/                        bodies and index entries being written; emptied at start
//	lock                        flock held by the one process using root
//
//	synced                      when the last file system sync began (see durable.go)
//	index.pack, index.log       the index again in two files, for Walk and GC (see pack.go)
//
// A body becomes visible only by rename, under the name of its own checksum,
// and an index entry is written (also by rename) only after its blob. A
// process crash leaves at worst an unreferenced blob; after a power loss, Open
// hashes the blobs written since the last sync again. Either way no key names
// a wrong or partial body: a torn index entry or one whose blob is gone reads
// as absent. The same bytes reached under several keys (mirrors,
// by-hash paths, releases) are stored once. Blobs no key references any more
// are removed by GC, which Open runs after an unclean end.
package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"

	"vzpkg2/internal/store"
)

// Store keeps objects under a root directory.
type Store struct {
	root string
	lock *os.File

	// mu serialises commits, links and GC's removals, so GC never removes a
	// blob whose index entry is about to be written.
	mu     sync.Mutex
	gcLive map[string]bool // while GC runs: blobs committed or linked since it began; guarded by mu
	gcMu   sync.Mutex      // held by the GC or Collection running

	log    entryLog    // the index in two files, for Walk and GC (see pack.go)
	recent recentInfos // index entries served without reading them again
	small  smallBodies // small bodies served from memory

	dirty     atomic.Bool   // commits since the last flush
	stopFlush chan struct{} // closed to stop the flusher
	flushDone chan struct{} // closed when the flusher returned
	closeOnce sync.Once
	closeErr  error
	recovery  Recovery // what Open found of a crash
}

// Open prepares root (creating it if needed), takes its lock and removes
// leftovers of interrupted writes. After a crash bodies whose index entry
// was never written may be left: they take space only, and the caller
// collects them with GC when it suits it (serve after it has started
// serving: on a large cache that reads every index entry). Until a GC or a
// Collection ends, every Open says so (Recovery().CollectDue).
func Open(root string) (*Store, error) {
	for _, d := range []string{root, filepath.Join(root, "blobs"), filepath.Join(root, "index"), filepath.Join(root, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create cache directory: %w", err)
		}
	}
	lock, err := os.OpenFile(filepath.Join(root, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open cache lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("cache directory %s is in use by another pkg-cacher: %w", root, err)
	}
	s := &Store{root: root, lock: lock}
	if err := makeFanOut(root); err != nil {
		lock.Close()
		return nil, err
	}
	// objects/ is the layout of pkg-cacher 0.1.0, keyed by request: dropped.
	err = errors.Join(s.cleanTmp(), os.RemoveAll(filepath.Join(root, "objects")))
	var token string
	if err == nil {
		s.recovery, token, err = s.recover()
	}
	if err == nil {
		s.openLog(token)
		err = s.markCollectDue()
	}
	if err != nil {
		lock.Close()
		return nil, err
	}
	s.startFlusher()
	return s, nil
}

// collectFile exists while a collection is due.
const collectFile = "collect-due"

// markCollectDue records that a collection is due after a crash, and
// whether one is (after this crash or one before).
func (s *Store) markCollectDue() error {
	p := filepath.Join(s.root, collectFile)
	if !s.recovery.Clean {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			return fmt.Errorf("record that a collection is due: %w", err)
		}
	}
	_, err := os.Stat(p)
	s.recovery.CollectDue = err == nil
	return nil
}

// collected records that a whole collection ended.
func (s *Store) collected() {
	os.Remove(filepath.Join(s.root, collectFile))
}

// makeFanOut creates the 256 subdirectories of blobs/ and index/ up front:
// created on the first commit into each instead, they cost a cold cache's
// first clients a directory creation per file while the file system is busy
// writing the files.
func makeFanOut(root string) error {
	for _, d := range []string{"blobs", "index"} {
		for i := range 256 {
			err := os.Mkdir(filepath.Join(root, d, fmt.Sprintf("%02x", i)), 0o755)
			if err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("create cache directory: %w", err)
			}
		}
	}
	return nil
}

// Recovery is what Open found of a crash before it.
func (s *Store) Recovery() Recovery { return s.recovery }

// Close makes every commit durable and releases the lock on the root
// directory.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stopFlusher()
		err := s.flush(true, s.closeLog())
		s.closeErr = errors.Join(err, s.lock.Close())
	})
	return s.closeErr
}

func (s *Store) cleanTmp() error {
	tmp := filepath.Join(s.root, "tmp")
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return fmt.Errorf("clean temp area: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(tmp, e.Name())); err != nil {
			return fmt.Errorf("clean temp area: %w", err)
		}
	}
	return nil
}

// indexPath is the index entry of key.
func (s *Store) indexPath(key string) string {
	sum := sha256.Sum256([]byte(key))
	h := hex.EncodeToString(sum[:])
	return filepath.Join(s.root, "index", h[:2], h)
}

// blobPath is the body whose SHA-256 is sum (hex).
func (s *Store) blobPath(sum string) string {
	if len(sum) < 2 {
		sum = "xx" + sum
	}
	return filepath.Join(s.root, "blobs", sum[:2], sum)
}

func readIndex(p string) (store.Info, error) {
	var info store.Info
	b, err := os.ReadFile(p)
	if err != nil {
		return info, err
	}
	if err := decodeInfo(b, &info); err != nil {
		return info, fmt.Errorf("%s: %w", p, err)
	}
	return info, nil
}

// notExist is the error for key when reading its index entry or blob failed
// with err: absent, torn or another key's entry mean the key is not stored;
// other failures (out of descriptors, I/O errors) are errors of their own,
// so that they never pass for a miss and start a download.
func notExist(key string, err error) error {
	var perr *fs.PathError
	if errors.As(err, &perr) && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read cache entry %q: %w", key, err)
	}
	return fmt.Errorf("%q: %w (%v)", key, store.ErrNotExist, err)
}

// Open implements store.Store.
func (s *Store) Open(_ context.Context, key string) (store.Object, error) {
	info, err := s.info(key)
	if err != nil {
		return nil, err
	}
	if info.Size <= smallBodyMax {
		return s.openSmall(info)
	}
	f, err := os.Open(s.blobPath(info.SHA256))
	if err != nil {
		s.recent.forget(key)
		return nil, notExist(key, err)
	}
	fi, err := f.Stat()
	if err != nil || fi.Size() != info.Size {
		f.Close()
		s.recent.forget(key)
		return nil, notExist(key, fmt.Errorf("blob %s does not have the indexed size", info.SHA256))
	}
	return &Object{f: f, info: info}, nil
}

// openSmall opens a small body from memory, reading it in on first use.
func (s *Store) openSmall(info store.Info) (store.Object, error) {
	b, ok := s.small.get(info.SHA256)
	if !ok {
		var err error
		b, err = os.ReadFile(s.blobPath(info.SHA256))
		sum := sha256.Sum256(b)
		if err == nil && (int64(len(b)) != info.Size || hex.EncodeToString(sum[:]) != info.SHA256) {
			err = fmt.Errorf("blob %s does not have the indexed size and checksum", info.SHA256)
		}
		if err != nil {
			s.recent.forget(info.Key)
			return nil, notExist(info.Key, err)
		}
		s.small.put(info.SHA256, b)
	}
	return &Object{mem: bytes.NewReader(b), info: info}, nil
}

// info returns key's index entry.
func (s *Store) info(key string) (store.Info, error) {
	info, gen, ok := s.recent.get(key)
	if ok {
		return info, nil
	}
	info, err := readIndex(s.indexPath(key))
	if err != nil {
		return info, notExist(key, err)
	}
	if info.Key != key {
		return info, notExist(key, errors.New("index entry of another key"))
	}
	s.recent.put(info, gen)
	return info, nil
}

// Stat implements store.Store.
func (s *Store) Stat(ctx context.Context, key string) (store.Info, error) {
	o, err := s.Open(ctx, key)
	if err != nil {
		return store.Info{}, err
	}
	defer o.Close()
	return o.Info(), nil
}

// SetInfo implements store.Store.
func (s *Store) SetInfo(_ context.Context, info store.Info) error {
	old, err := s.info(info.Key)
	if err != nil {
		return err
	}
	if info.Size != old.Size || info.SHA256 != old.SHA256 {
		return fmt.Errorf("set info of %q: size or checksum differs from the stored body", info.Key)
	}
	return s.writeIndex(s.indexPath(info.Key), info)
}

// writeIndex writes an index entry atomically; the flusher makes it durable.
func (s *Store) writeIndex(p string, info store.Info) error {
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Join(s.root, "tmp"), "index-*")
	if err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.MkdirAll(filepath.Dir(p), 0o755)
	}
	if err == nil {
		s.log.mu.Lock()
		err = os.Rename(tmp.Name(), p)
		if err == nil {
			s.record(info, false)
		}
		s.log.mu.Unlock()
	}
	s.dirty.Store(true)
	s.recent.forget(info.Key)
	if err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	return nil
}

// Create implements store.Store.
func (s *Store) Create(_ context.Context, key string) (store.Writer, error) {
	f, err := os.CreateTemp(filepath.Join(s.root, "tmp"), "body-*")
	if err != nil {
		return nil, fmt.Errorf("create temp file for %q: %w", key, err)
	}
	return &Writer{s: s, key: key, f: f, sum: sha256.New()}, nil
}

// Link implements store.Store.
func (s *Store) Link(_ context.Context, key string, info store.Info) (store.Info, error) {
	if !isSHA256(info.SHA256) {
		return info, notExist(key, fmt.Errorf("%q is not a SHA-256", info.SHA256))
	}
	s.mu.Lock() // no GC between the check and the index entry
	defer s.mu.Unlock()
	s.live(info.SHA256)
	fi, err := os.Stat(s.blobPath(info.SHA256))
	if err != nil {
		return info, notExist(key, err)
	}
	if !fi.Mode().IsRegular() || info.Size >= 0 && fi.Size() != info.Size {
		return info, notExist(key, fmt.Errorf("blob %s has %d bytes, not %d", info.SHA256, fi.Size(), info.Size))
	}
	info.Key, info.Size = key, fi.Size()
	if err := s.writeIndex(s.indexPath(key), info); err != nil {
		return info, fmt.Errorf("link %q: %w", key, err)
	}
	return info, nil
}

// live tells a GC under way that the blob sum is in use; s.mu is held.
func (s *Store) live(sum string) {
	if s.gcLive != nil {
		s.gcLive[sum] = true
	}
}

// isSHA256 reports whether s is a SHA-256 in lowercase hex, as blobs are named.
func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := range len(s) {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Delete implements store.Store. The blob stays until GC finds no other key
// referencing it.
func (s *Store) Delete(_ context.Context, key string) error {
	defer s.recent.forget(key)
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	if err := os.Remove(s.indexPath(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	s.record(store.Info{Key: key}, true)
	return nil
}

// Walk implements store.Store. It shows the entries whose blob is present
// (Open checks its size).
func (s *Store) Walk(ctx context.Context, fn func(store.Info) error) error {
	_, err := s.walk(ctx, fn, nil)
	return err
}

// walk is Walk, calling shown with the blob of each entry shown, and
// returning the blobs it listed.
func (s *Store) walk(ctx context.Context, fn func(store.Info) error, shown func(blob [32]byte)) (blobSet, error) {
	s.log.walkMu.Lock()
	defer s.log.walkMu.Unlock()
	blobs, err := s.listBlobs()
	if err != nil {
		return nil, err
	}
	return blobs, s.entries(ctx, func(info store.Info) error {
		var k [32]byte
		if !hexDecode(k[:], info.SHA256) {
			return nil
		}
		if _, ok := blobs[k]; !ok {
			return nil // its blob is gone: Open would not serve it
		}
		if shown != nil {
			shown(k)
		}
		return fn(info)
	})
}

// GC removes the blobs no index entry references and returns how many it
// removed and their bytes. It reads the index without holding up commits:
// a blob committed or linked while it reads is kept.
func (s *Store) GC(ctx context.Context) (removed int, freed int64, err error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	s.mu.Lock()
	s.gcLive = map[string]bool{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.gcLive = nil
		s.mu.Unlock()
	}()
	used := map[string]bool{}
	s.log.walkMu.Lock()
	err = s.entries(ctx, func(info store.Info) error { used[info.SHA256] = true; return nil })
	s.log.walkMu.Unlock()
	if err != nil {
		return 0, 0, fmt.Errorf("collect garbage: %w", err)
	}
	var unused []string
	err = filepath.WalkDir(filepath.Join(s.root, "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !used[d.Name()] {
			unused = append(unused, p)
		}
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("collect garbage: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range unused {
		n, err := s.removeGarbage(filepath.Base(p), p)
		if err != nil {
			return removed, freed, err
		}
		if n >= 0 {
			removed++
			freed += n
		}
	}
	s.collected()
	return removed, freed, nil
}

// removeGarbage removes the blob sum at p that a collection found
// unreferenced and returns its size, or -1 when it is gone already or was
// committed or linked since the collection began (kept). s.mu is held.
func (s *Store) removeGarbage(sum, p string) (int64, error) {
	if s.gcLive[sum] {
		return -1, nil
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return -1, nil
	}
	if err := os.Remove(p); err != nil {
		return -1, fmt.Errorf("collect garbage: %w", err)
	}
	return fi.Size(), nil
}

// Collection is a garbage collection that needs no reading of the index
// of its own: it counts the blobs the entries its Walk shows reference,
// and Finish removes the listed blobs nothing references then. Blobs
// committed or linked after StartGC are kept. One collection (or GC) runs
// at a time: StartGC waits for the one before to end.
type Collection struct {
	s     *Store
	blobs blobSet            // listed by Walk
	refs  map[[32]byte]int32 // entries Walk showed, by blob
}

// StartGC begins a Collection, once any GC or Collection running has ended.
// Finish ends it.
func (s *Store) StartGC() *Collection {
	s.gcMu.Lock()
	s.mu.Lock()
	s.gcLive = map[string]bool{}
	s.mu.Unlock()
	return &Collection{s: s}
}

// Walk is the Store's Walk, counting what the entries it shows reference.
func (c *Collection) Walk(ctx context.Context, fn func(store.Info) error) error {
	c.refs = map[[32]byte]int32{}
	blobs, err := c.s.walk(ctx, fn, func(k [32]byte) { c.refs[k]++ })
	if err != nil {
		return err // an incomplete count: Finish removes nothing
	}
	c.blobs = blobs
	return nil
}

// Finish removes the blobs Walk listed that no entry it showed references,
// less those of removed (entries the caller deleted since), and returns
// how many it removed and their bytes. Without a Walk it removes nothing.
// An entry deleted or replaced by others since keeps its blob until the
// next collection. It is called once, Walk or not.
func (c *Collection) Finish(removed []store.Info) (n int, freed int64, err error) {
	s := c.s
	s.mu.Lock()
	defer func() {
		s.gcLive = nil
		s.mu.Unlock()
		s.gcMu.Unlock()
	}()
	if c.blobs == nil {
		return 0, 0, nil
	}
	for _, info := range removed {
		var k [32]byte
		if hexDecode(k[:], info.SHA256) {
			c.refs[k]--
		}
	}
	for k := range c.blobs {
		if c.refs[k] > 0 {
			continue
		}
		sum := hex.EncodeToString(k[:])
		size, err := s.removeGarbage(sum, s.blobPath(sum))
		if err != nil {
			return n, freed, err
		}
		if size >= 0 {
			n++
			freed += size
		}
	}
	s.collected()
	return n, freed, nil
}

// Object is a committed body open for reading: its blob, or for a small
// body a copy in memory.
type Object struct {
	f    *os.File      // nil when mem is set
	mem  *bytes.Reader // a small body
	info store.Info
}

// Info implements store.Object.
func (o *Object) Info() store.Info { return o.info }

// Read implements io.Reader.
func (o *Object) Read(p []byte) (int, error) {
	if o.mem != nil {
		return o.mem.Read(p)
	}
	return o.f.Read(p)
}

// ReadAt implements io.ReaderAt.
func (o *Object) ReadAt(p []byte, off int64) (int, error) {
	if o.mem != nil {
		return o.mem.ReadAt(p, off)
	}
	return o.f.ReadAt(p, off)
}

// Seek implements io.Seeker.
func (o *Object) Seek(off int64, whence int) (int64, error) {
	if o.mem != nil {
		return o.mem.Seek(off, whence)
	}
	return o.f.Seek(off, whence)
}

// Close implements io.Closer.
func (o *Object) Close() error {
	if o.mem != nil {
		return nil
	}
	return o.f.Close()
}

// OSFile returns the open file, so a server can hand it to sendfile; nil
// for a body in memory.
func (o *Object) OSFile() *os.File { return o.f }

// Writer writes a body to the temp area; see store.Writer.
type Writer struct {
	s    *Store
	key  string
	f    *os.File
	sum  hash.Hash
	size int64
	done bool // committed or cancelled
}

// Write implements io.Writer, hashing as it writes.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.sum.Write(p[:n])
	w.size += int64(n)
	return n, err
}

// SHA256 implements store.Writer.
func (w *Writer) SHA256() string { return hex.EncodeToString(w.sum.Sum(nil)) }

// ReadAt reads bytes already written.
func (w *Writer) ReadAt(p []byte, off int64) (int, error) { return w.f.ReadAt(p, off) }

// Commit implements store.Writer: rename into place under the body's checksum
// (or drop the body when that blob exists already), then write the key's
// index entry. The flusher makes both durable within flushEvery.
func (w *Writer) Commit(_ context.Context, info store.Info) (store.Info, error) {
	if w.done {
		return info, errors.New("commit: writer already finished")
	}
	info.Key, info.Size, info.SHA256 = w.key, w.size, hex.EncodeToString(w.sum.Sum(nil))
	fail := func(err error) (store.Info, error) {
		w.cancel()
		return info, fmt.Errorf("commit %q: %w", w.key, err)
	}
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.s.live(info.SHA256)
	blob := w.s.blobPath(info.SHA256)
	if fi, err := os.Stat(blob); err == nil && fi.Size() == info.Size {
		w.cancel() // stored already, under another key
	} else {
		if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
			return fail(err)
		}
		if err := os.Rename(w.f.Name(), blob); err != nil {
			return fail(err)
		}
		w.done = true
		w.s.dirty.Store(true)
	}
	if err := w.s.writeIndex(w.s.indexPath(w.key), info); err != nil {
		return info, fmt.Errorf("commit %q: %w", w.key, err)
	}
	return info, nil
}

// Cancel implements store.Writer.
func (w *Writer) Cancel(context.Context) error {
	if w.done {
		return nil
	}
	return w.cancel()
}

func (w *Writer) cancel() error {
	w.done = true
	if err := os.Remove(w.f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("discard temp file: %w", err)
	}
	return nil
}

// Close releases the temp file descriptor, cancelling an unfinished write.
func (w *Writer) Close() error {
	if !w.done {
		w.cancel()
	}
	return w.f.Close()
}

// Compile-time checks.
var (
	_ store.Object = (*Object)(nil)
	_ store.Writer = (*Writer)(nil)
)

// Problem is damage Verify found.
type Problem struct {
	Path string // the blob or index entry
	Key  string // the key affected, when known
	What string
}

// Report sums up a Verify run.
type Report struct {
	Blobs    int   // blobs checked
	Bytes    int64 // bytes hashed
	Problems []Problem
}

// Verify re-hashes every blob and checks every index entry against its blob.
// With repair it removes damaged blobs and the entries that name them, so
// the next request for those keys fetches them again.
func (s *Store) Verify(ctx context.Context, repair bool) (Report, error) {
	var r Report
	bad := map[string]bool{}
	if repair {
		s.log.packed.Store(false) // entries removed below: read index/ next time
		defer s.recent.forget("")
		defer s.small.clear()
	}
	err := filepath.WalkDir(filepath.Join(s.root, "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		got, n, err := hashFile(p)
		if err != nil {
			return err
		}
		r.Blobs++
		r.Bytes += n
		if got != d.Name() {
			bad[d.Name()] = true
			r.Problems = append(r.Problems, Problem{Path: p, What: "content has SHA-256 " + got})
			if repair {
				return os.Remove(p)
			}
		}
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("verify: %w", err)
	}
	err = filepath.WalkDir(filepath.Join(s.root, "index"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := readIndex(p)
		var what string
		switch fi, serr := os.Stat(s.blobPath(info.SHA256)); {
		case err != nil:
			what = "unreadable index entry: " + err.Error()
		case bad[info.SHA256]:
			what = "its blob is damaged"
		case serr != nil:
			what = "its blob " + info.SHA256 + " is missing"
		case fi.Size() != info.Size:
			what = fmt.Sprintf("its blob has %d bytes, the index says %d", fi.Size(), info.Size)
		default:
			return nil
		}
		r.Problems = append(r.Problems, Problem{Path: p, Key: info.Key, What: what})
		if repair {
			return os.Remove(p)
		}
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("verify: %w", err)
	}
	return r, nil
}

// hashFile returns the SHA-256 (hex) and size of the file at p.
func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", n, fmt.Errorf("read %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
