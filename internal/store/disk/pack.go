package disk

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"vzpkg2/internal/store"
)

// Walk and GC read every index entry. One small file each costs a random
// read each when the page cache is cold (about 20 s for 200,000 entries
// here), so the index is also kept in two files read from start to end:
//
//	index.pack   a header line naming its token, then each index entry as
//	             of when it was written: one JSON store.Info a line
//	index.log    the same header, then each change since, in order: "+"
//	             and the JSON store.Info written, or "-" and the JSON key
//	             removed
//
// The files under index/ stay what Open and Stat read and what a crash
// leaves right; the two files only repeat them. Every change of an entry
// is recorded under s.log.mu together with the change itself, so the records
// come in the order of the changes. They are believed only when the record
// of the last sync says the store was closed cleanly with the token both
// files name: then Close made them durable, and no other program (an older
// pkg-cacher) changed the index since, as it would have written its clean
// record without the token. Otherwise (a crash, a new cache, a cache of an
// older version) the first Walk or GC reads index/ file by file, many files
// at a time, and writes the two files afresh as it goes.
const (
	packFile   = "index.pack"
	logFile    = "index.log"
	fileHeader = "pkg-cacher index " // and the token
	indexReads = 32                  // index entries read at a time when reading index/: cold random reads scale with the queue depth
	maxRecord  = 1 << 20             // longest line: keys are URLs
	foldAt     = 4                   // the log is folded into the pack when it is over 1/foldAt of the pack's size
)

// entryLog is the state of index.pack and index.log.
type entryLog struct {
	walkMu sync.Mutex // one reading or rewriting of the two files at a time

	mu     sync.Mutex  // serialises changes of index entries with their records; guards the fields below
	f      *os.File    // index.log open for appending; nil while no log is kept
	size   int64       // bytes in index.log
	token  string      // of index.pack and index.log
	packed atomic.Bool // index.pack and index.log together hold every index entry
}

func newToken() string { return rand.Text() }

// openLog believes index.pack and index.log when both name token.
func (s *Store) openLog(token string) {
	if token == "" || readHeader(filepath.Join(s.root, packFile)) != token || readHeader(filepath.Join(s.root, logFile)) != token {
		return
	}
	f, err := os.OpenFile(filepath.Join(s.root, logFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return
	}
	s.log.f, s.log.size, s.log.token = f, fi.Size(), token
	s.log.packed.Store(true)
}

// readHeader returns the token the header of the file at p names, or "".
func readHeader(p string) string {
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil || len(line) <= len(fileHeader)+1 || line[:len(fileHeader)] != fileHeader {
		return ""
	}
	return line[len(fileHeader) : len(line)-1]
}

// record appends a change of key's entry to the log: info written, or the
// entry removed. s.log.mu is held, since before the change.
func (s *Store) record(info store.Info, removed bool) {
	if s.log.f == nil {
		return
	}
	var line []byte
	var err error
	if removed {
		line, err = json.Marshal(info.Key)
		line = append([]byte{'-'}, line...)
	} else {
		line, err = json.Marshal(info)
		line = append([]byte{'+'}, line...)
	}
	if err == nil {
		var n int
		n, err = s.log.f.Write(append(line, '\n'))
		s.log.size += int64(n)
	}
	if err != nil {
		s.dropLog()
	}
}

// dropLog stops keeping the log after a failure: the next Walk or GC reads
// index/. s.log.mu is held.
func (s *Store) dropLog() {
	s.log.packed.Store(false)
	if s.log.f != nil {
		s.log.f.Close()
		s.log.f = nil
	}
}

// closeLog stops keeping the log and returns the token to record as clean,
// or "" when the two files do not hold the index.
func (s *Store) closeLog() string {
	s.log.walkMu.Lock()
	defer s.log.walkMu.Unlock()
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	token := ""
	if s.log.f != nil && s.log.f.Close() == nil && s.log.packed.Load() {
		token = s.log.token
	}
	s.log.f = nil
	s.log.packed.Store(false)
	return token
}

// entries calls fn with every index entry, from the two files when they
// hold the index, else from index/ (writing the two files afresh). Blobs
// are not checked. s.log.walkMu is held.
func (s *Store) entries(ctx context.Context, fn func(store.Info) error) error {
	if s.log.packed.Load() {
		return s.readPack(ctx, fn)
	}
	return s.rebuild(ctx, fn)
}

// packWriter writes a new index.pack under tmp/ until commit.
type packWriter struct {
	f     *os.File
	w     *bufio.Writer
	token string
}

func (s *Store) newPack() (*packWriter, error) {
	f, err := os.CreateTemp(filepath.Join(s.root, "tmp"), "index.pack-*")
	if err != nil {
		return nil, err
	}
	f.Chmod(0o644) // as the other files: not secret
	p := &packWriter{f: f, w: bufio.NewWriterSize(f, 1<<20), token: newToken()}
	p.w.WriteString(fileHeader + p.token + "\n")
	return p, nil
}

func (p *packWriter) add(info store.Info) error {
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	p.w.Write(b)
	return p.w.WriteByte('\n')
}

// commit renames the pack into place.
func (p *packWriter) commit(root string) error {
	err := p.w.Flush()
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(p.f.Name(), filepath.Join(root, packFile))
	}
	if err != nil {
		os.Remove(p.f.Name())
	}
	return err
}

func (p *packWriter) discard() {
	p.f.Close()
	os.Remove(p.f.Name())
}

// rebuild calls fn with every entry under index/ and writes the two files
// afresh: the log begins empty before the first entry is read, so that
// every change made while it reads is in it.
func (s *Store) rebuild(ctx context.Context, fn func(store.Info) error) error {
	pack, err := s.newPack()
	if err == nil {
		s.log.mu.Lock()
		s.dropLog()
		err = s.newLog(pack.token, nil)
		s.log.mu.Unlock()
		if err != nil {
			pack.discard()
			pack = nil
		}
	}
	complete := true
	err = s.readIndexDir(ctx, func(info store.Info, err error) error {
		if err != nil {
			complete = false // unreadable for now: not an entry to forget in the pack
			return nil
		}
		if pack != nil && pack.add(info) != nil {
			pack.discard()
			pack = nil
		}
		return fn(info)
	})
	if pack == nil {
		return err
	}
	if err != nil || !complete {
		pack.discard()
		return err
	}
	if pack.commit(s.root) == nil {
		s.log.mu.Lock()
		if s.log.f != nil && s.log.token == pack.token {
			s.log.packed.Store(true)
		}
		s.log.mu.Unlock()
	}
	return nil
}

// readIndexDir calls fn with each entry under index/, or with the error of
// a file that could not be read (not for a torn or foreign file: it is no
// entry). It reads indexReads files at a time, and calls fn in the order
// of their names.
func (s *Store) readIndexDir(ctx context.Context, fn func(store.Info, error) error) error {
	type result struct {
		info store.Info
		err  error
		ok   bool
	}
	for i := range 256 {
		dir := filepath.Join(s.root, "index", fmt.Sprintf("%02x", i))
		names, err := readNames(dir)
		if err != nil {
			return fmt.Errorf("read cache index: %w", err)
		}
		results := make([]result, len(names))
		var next atomic.Int64
		var wg sync.WaitGroup
		for range min(indexReads, len(names)) {
			wg.Go(func() {
				for j := int(next.Add(1) - 1); j < len(names) && ctx.Err() == nil; j = int(next.Add(1) - 1) {
					p := filepath.Join(dir, names[j])
					info, err := readIndex(p)
					var perr *fs.PathError
					switch {
					case errors.As(err, &perr) && !errors.Is(err, fs.ErrNotExist):
						results[j] = result{err: err, ok: true}
					case err == nil && p == s.indexPath(info.Key):
						results[j] = result{info: info, ok: true}
					}
				}
			})
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, r := range results {
			if r.ok {
				if err := fn(r.info, r.err); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// readNames returns the names in dir, sorted; none when dir is absent.
func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	slices.Sort(names)
	return names, err
}

// readPack calls fn with every entry the two files hold: those of the pack
// no record of the log changed, then those the log wrote last. When the
// log has grown large it folds it into a new pack as it goes.
func (s *Store) readPack(ctx context.Context, fn func(store.Info) error) error {
	s.log.mu.Lock()
	size, token := s.log.size, s.log.token
	s.log.mu.Unlock()
	changed := map[string]*store.Info{} // nil: removed
	err := readRecords(filepath.Join(s.root, logFile), token, size, func(b []byte) error {
		var info store.Info
		var err error
		switch b[0] {
		case '+':
			err = decodeInfo(b[1:], &info)
			changed[info.Key] = &info
		case '-':
			err = json.Unmarshal(b[1:], &info.Key)
			changed[info.Key] = nil
		default:
			err = errors.New("not a record")
		}
		return err
	})
	var pack *packWriter
	if fi, serr := os.Stat(filepath.Join(s.root, packFile)); err == nil && serr == nil && size > fi.Size()/foldAt {
		pack, _ = s.newPack() // without one, the log is folded next time
	}
	var emitted int
	var fnErr error // fn's own, not damage
	emit := func(info store.Info) error {
		if pack != nil && pack.add(info) != nil {
			pack.discard()
			pack = nil
		}
		emitted++
		fnErr = fn(info)
		return fnErr
	}
	if err == nil {
		err = readRecords(filepath.Join(s.root, packFile), token, -1, func(b []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			var info store.Info
			if err := decodeInfo(b, &info); err != nil {
				return err
			}
			if _, ok := changed[info.Key]; ok {
				return nil
			}
			return emit(info)
		})
	}
	if err == nil {
		keys := make([]string, 0, len(changed))
		for k, info := range changed {
			if info != nil {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			if err = emit(*changed[k]); err != nil {
				break
			}
		}
	}
	if err != nil {
		if pack != nil {
			pack.discard()
		}
		if fnErr != nil {
			return fnErr
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Damaged: read index/ instead, now if fn has seen nothing yet.
		s.log.mu.Lock()
		s.dropLog()
		s.log.mu.Unlock()
		if emitted == 0 {
			return s.rebuild(ctx, fn)
		}
		return fmt.Errorf("read cache index: %w", err)
	}
	if pack != nil {
		s.fold(pack, size)
	}
	return nil
}

// fold makes pack, which holds the index as of the log's first size bytes,
// the pack, and the records since the new log.
func (s *Store) fold(pack *packWriter, size int64) {
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	if s.log.f == nil {
		pack.discard()
		return
	}
	tail := make([]byte, s.log.size-size)
	err := func() error {
		f, err := os.Open(filepath.Join(s.root, logFile))
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.ReadAt(tail, size)
		return err
	}()
	if err == nil {
		err = pack.commit(s.root)
	} else {
		pack.discard()
	}
	if err == nil {
		err = s.newLog(pack.token, tail)
	}
	if err != nil {
		s.dropLog()
	}
}

// newLog replaces index.log by one of token holding records, and keeps it.
// It is a new file, not the old one truncated: a copy of the cache made
// with hard links keeps its own. s.log.mu is held.
func (s *Store) newLog(token string, records []byte) error {
	f, err := os.CreateTemp(filepath.Join(s.root, "tmp"), "index.log-*")
	if err != nil {
		return err
	}
	header := fileHeader + token + "\n"
	_, err = f.WriteString(header)
	if err == nil {
		_, err = f.Write(records)
	}
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(s.root, logFile))
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if s.log.f != nil {
		s.log.f.Close()
	}
	s.log.f, s.log.size, s.log.token = f, int64(len(header)+len(records)), token
	return nil
}

// readRecords calls fn with each line after the header of the file at p
// (without its newline), reading at most limit bytes (all when negative).
func readRecords(p, token string, limit int64, fn func([]byte) error) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if limit >= 0 {
		r = io.LimitReader(f, limit)
	}
	sc := bufio.NewScanner(bufio.NewReaderSize(r, 1<<20))
	sc.Buffer(make([]byte, 64<<10), maxRecord)
	if !sc.Scan() || sc.Text() != fileHeader+token {
		return fmt.Errorf("%s: not the index of token %s", p, token)
	}
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			return fmt.Errorf("%s: empty record", p)
		}
		if err := fn(sc.Bytes()); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	return sc.Err()
}

// blobSet is the blobs present, by checksum.
type blobSet map[[32]byte]struct{}

// listBlobs lists blobs/ (a few hundred directory reads, no file's own).
func (s *Store) listBlobs() (blobSet, error) {
	set := blobSet{}
	for i := range 256 {
		names, err := readNames(filepath.Join(s.root, "blobs", fmt.Sprintf("%02x", i)))
		if err != nil {
			return nil, fmt.Errorf("list blobs: %w", err)
		}
		for _, n := range names {
			var sum [32]byte
			if hexDecode(sum[:], n) {
				set[sum] = struct{}{}
			}
		}
	}
	return set, nil
}

// hexDecode decodes s into dst, reporting whether s is exactly that many
// bytes in hex.
func hexDecode(dst []byte, s string) bool {
	n, err := hex.Decode(dst, []byte(s))
	return err == nil && n == len(dst) && len(s) == 2*len(dst)
}

// decodeInfo decodes a JSON store.Info as json.Unmarshal does, several
// times faster on what json.Marshal writes: an expiry pass decodes every
// entry of the index. Anything else (escapes, null, fields of another
// version) goes to json.Unmarshal.
func decodeInfo(b []byte, info *store.Info) error {
	if fastInfo(b, info) {
		return nil
	}
	*info = store.Info{}
	return json.Unmarshal(b, info)
}

// fastInfo decodes an object of plain strings and integers into info, or
// reports false.
func fastInfo(b []byte, info *store.Info) bool {
	b, open := bytes.CutPrefix(b, []byte("{"))
	b, closed := bytes.CutSuffix(b, []byte("}"))
	if !open || !closed {
		return false
	}
	*info = store.Info{}
	for len(b) > 0 {
		name, rest, ok := plainString(b)
		if !ok || len(rest) == 0 || rest[0] != ':' {
			return false
		}
		rest = rest[1:]
		var val []byte
		quoted := len(rest) > 0 && rest[0] == '"'
		if quoted {
			if val, rest, ok = plainString(rest); !ok {
				return false
			}
		} else {
			i := bytes.IndexByte(rest, ',')
			if i < 0 {
				i = len(rest)
			}
			val, rest = rest[:i], rest[i:]
		}
		if !setField(info, string(name), val, quoted) {
			return false
		}
		if len(rest) > 0 && rest[0] != ',' || len(rest) == 1 {
			return false
		}
		b = rest[min(1, len(rest)):]
	}
	return true
}

// setField sets info's field of JSON name to val, a string when quoted,
// or reports false.
func setField(info *store.Info, name string, val []byte, quoted bool) bool {
	var str *string
	var tm *time.Time
	switch name {
	case "key":
		str = &info.Key
	case "sha256":
		str = &info.SHA256
	case "content_type":
		str = &info.ContentType
	case "etag":
		str = &info.ETag
	case "validated":
		tm = &info.Validated
	case "last_modified":
		tm = &info.LastModified
	case "size":
		n, err := strconv.ParseInt(string(val), 10, 64)
		info.Size = n
		return err == nil && !quoted && jsonInteger(val)
	default:
		return false
	}
	if !quoted {
		return false
	}
	if str != nil {
		*str = string(val)
		return true
	}
	t, err := time.Parse(time.RFC3339Nano, string(val))
	*tm = t
	return err == nil
}

// jsonInteger reports whether b is an integer as JSON writes it: ParseInt
// also takes +5 and 05.
func jsonInteger(b []byte) bool {
	b, _ = bytes.CutPrefix(b, []byte("-"))
	if len(b) == 0 || b[0] == '0' && len(b) > 1 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// plainString is the JSON string b begins with and what follows it, when
// it is valid UTF-8 without control characters and escapes none but \"
// and \\ (ETags are quoted).
func plainString(b []byte) (s, rest []byte, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return nil, nil, false
	}
	var unescaped []byte // once an escape is seen
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			s = b[1:i]
			if unescaped != nil {
				s = unescaped
			}
			return s, b[i+1:], utf8.Valid(s)
		case c == '\\':
			if i+1 == len(b) || b[i+1] != '"' && b[i+1] != '\\' {
				return nil, nil, false
			}
			if unescaped == nil {
				unescaped = append(make([]byte, 0, len(b)), b[1:i]...)
			}
			i++
			unescaped = append(unescaped, b[i])
		case c < 0x20:
			return nil, nil, false
		case unescaped != nil:
			unescaped = append(unescaped, c)
		}
	}
	return nil, nil, false
}
