// Package disk is a store.Store on a local file system.
//
// Layout under the root directory:
//
//	objects/<hh>/<sha256(key)>       the body, exactly as committed
//	objects/<hh>/<sha256(key)>.meta  JSON store.Info plus the body's inode
//	tmp/                             bodies being written; emptied at start
//	lock                             flock held by the one process using root
//
// A body becomes visible only by rename after fsync, and its .meta names the
// inode it describes, so a crash between the two renames is seen as a miss,
// never as a wrong or partial file.
package disk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"vzpkg2/internal/store"
)

// Store keeps objects under a root directory.
type Store struct {
	root string
	lock *os.File
}

var _ store.Store = (*Store)(nil)

// Open prepares root (creating it if needed), takes its lock and removes
// leftovers of interrupted writes.
func Open(root string) (*Store, error) {
	for _, d := range []string{root, filepath.Join(root, "objects"), filepath.Join(root, "tmp")} {
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
	if err := s.cleanTmp(); err != nil {
		lock.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the lock on the root directory.
func (s *Store) Close() error { return s.lock.Close() }

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

type meta struct {
	store.Info
	Inode uint64 `json:"inode"`
}

func (s *Store) paths(key string) (body, metaPath string) {
	sum := sha256.Sum256([]byte(key))
	h := hex.EncodeToString(sum[:])
	body = filepath.Join(s.root, "objects", h[:2], h)
	return body, body + ".meta"
}

func readMeta(p string) (meta, error) {
	var m meta
	b, err := os.ReadFile(p)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: %w", p, err)
	}
	return m, nil
}

func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

func notExist(key string, err error) error {
	return fmt.Errorf("%q: %w (%v)", key, store.ErrNotExist, err)
}

// Open implements store.Store.
func (s *Store) Open(_ context.Context, key string) (store.Object, error) {
	bodyPath, metaPath := s.paths(key)
	f, err := os.Open(bodyPath)
	if err != nil {
		return nil, notExist(key, err)
	}
	m, err := s.check(f, metaPath, key)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Object{f: f, info: m.Info}, nil
}

// check returns the metadata of the body open as f, if it describes that body.
func (s *Store) check(f *os.File, metaPath, key string) (meta, error) {
	m, err := readMeta(metaPath)
	if err != nil {
		return m, notExist(key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return m, fmt.Errorf("stat cached %q: %w", key, err)
	}
	if m.Key != key || m.Inode != inode(fi) || m.Size != fi.Size() {
		return m, notExist(key, errors.New("metadata does not describe the body"))
	}
	return m, nil
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
	bodyPath, metaPath := s.paths(info.Key)
	f, err := os.Open(bodyPath)
	if err != nil {
		return notExist(info.Key, err)
	}
	defer f.Close()
	m, err := s.check(f, metaPath, info.Key)
	if err != nil {
		return err
	}
	if info.Size != m.Size || info.SHA256 != m.SHA256 {
		return fmt.Errorf("set info of %q: size or checksum differs from the stored body", info.Key)
	}
	m.Info = info
	return s.writeMeta(metaPath, m)
}

func (s *Store) writeMeta(metaPath string, m meta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Join(s.root, "tmp"), "meta-*")
	if err != nil {
		return fmt.Errorf("write metadata: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), metaPath)
	}
	if err != nil {
		return fmt.Errorf("write metadata: %w", err)
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

// Delete implements store.Store.
func (s *Store) Delete(_ context.Context, key string) error {
	bodyPath, metaPath := s.paths(key)
	for _, p := range []string{metaPath, bodyPath} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete %q: %w", key, err)
		}
	}
	return nil
}

// Walk implements store.Store.
func (s *Store) Walk(ctx context.Context, fn func(store.Info) error) error {
	return filepath.WalkDir(filepath.Join(s.root, "objects"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".meta") {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := readMeta(p)
		if err != nil {
			return nil // a torn or foreign file: not an object
		}
		info, err := s.Stat(ctx, m.Key)
		if err != nil {
			return nil
		}
		return fn(info)
	})
}

// Object is a committed body open for reading.
type Object struct {
	f    *os.File
	info store.Info
}

// Info implements store.Object.
func (o *Object) Info() store.Info { return o.info }

// Read implements io.Reader.
func (o *Object) Read(p []byte) (int, error) { return o.f.Read(p) }

// ReadAt implements io.ReaderAt.
func (o *Object) ReadAt(p []byte, off int64) (int, error) { return o.f.ReadAt(p, off) }

// Seek implements io.Seeker.
func (o *Object) Seek(off int64, whence int) (int64, error) { return o.f.Seek(off, whence) }

// Close implements io.Closer.
func (o *Object) Close() error { return o.f.Close() }

// OSFile returns the open file, so a server can hand it to sendfile.
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

// ReadAt reads bytes already written.
func (w *Writer) ReadAt(p []byte, off int64) (int, error) { return w.f.ReadAt(p, off) }

// Commit implements store.Writer: fsync, rename into place, write the
// metadata naming the body's inode, fsync the directory.
func (w *Writer) Commit(_ context.Context, info store.Info) (store.Info, error) {
	if w.done {
		return info, errors.New("commit: writer already finished")
	}
	info.Key, info.Size, info.SHA256 = w.key, w.size, hex.EncodeToString(w.sum.Sum(nil))
	fail := func(err error) (store.Info, error) {
		w.cancel()
		return info, fmt.Errorf("commit %q: %w", w.key, err)
	}
	if err := w.f.Sync(); err != nil {
		return fail(err)
	}
	fi, err := w.f.Stat()
	if err != nil {
		return fail(err)
	}
	bodyPath, metaPath := w.s.paths(w.key)
	dir := filepath.Dir(bodyPath)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	if err := os.Rename(w.f.Name(), bodyPath); err != nil {
		return fail(err)
	}
	w.done = true
	if err := w.s.writeMeta(metaPath, meta{Info: info, Inode: inode(fi)}); err != nil {
		return info, fmt.Errorf("commit %q: %w", w.key, err)
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return info, fmt.Errorf("commit %q: sync directory: %w", w.key, err)
		}
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
