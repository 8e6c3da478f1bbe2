// Package expect knows what repository metadata promises about files: the
// size and SHA-256 of a package or index, by cache key. Some keys carry their
// checksum in their name (apt's by-hash paths, yum's checksum-prefixed
// repodata); the others are learned from the metadata pkg-cacher caches:
// Release/InRelease and Packages/Sources for apt, repomd.xml and primary.xml
// for yum/dnf.
package expect

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"path"
	"regexp"
	"sync"
)

// Sum is what a file must be.
type Sum struct {
	Size   int64  // -1 when only the checksum is known
	SHA256 string // lowercase hex
}

// Index holds learned checksums. It is safe for concurrent use.
type Index struct {
	mu    sync.RWMutex      // protects sums and kind
	sums  table             // by hash of the key: compact for a whole archive's Packages
	kind  map[string]string // metadata keys whose names do not say what they are (by-hash), by key: their index name
	onSet func(key string, s Sum)
}

type entry struct {
	size int64
	sum  [32]byte
}

// New returns an empty Index.
func New() *Index {
	return &Index{sums: newTable(), kind: map[string]string{}}
}

var (
	byHashRE   = regexp.MustCompile(`/by-hash/SHA256/([0-9a-f]{64})$`)
	repodataRE = regexp.MustCompile(`/repodata/([0-9a-f]{64})-[^/]+$`)
)

// NewListing returns an empty Index that also tells fn of every promise it
// learns, with its key (the Index itself keeps only a hash of the key).
func NewListing(fn func(key string, s Sum)) *Index {
	ix := New()
	ix.onSet = fn
	return ix
}

// NewFor returns an empty Index that keeps the promises it learns of the
// files under keys only: it answers for those alone. An expiry pass asks
// about the files in the cache, a small part of what a whole archive's
// indexes list.
func NewFor(keys []string) *Index {
	hs := make([]uint64, len(keys))
	for i, k := range keys {
		hs[i] = keyHash(k)
	}
	return &Index{sums: newTableFor(hs), kind: map[string]string{}}
}

// Expect returns what the file under key must be, if anything says.
func (ix *Index) Expect(key string) (Sum, bool) {
	if m := byHashRE.FindStringSubmatch(key); m != nil {
		return ix.withSize(key, m[1]), true
	}
	if m := repodataRE.FindStringSubmatch(key); m != nil {
		return ix.withSize(key, m[1]), true
	}
	ix.mu.RLock()
	e, ok := ix.sums.get(keyHash(key))
	ix.mu.RUnlock()
	if !ok {
		return Sum{}, false
	}
	return Sum{Size: e.size, SHA256: hex.EncodeToString(e.sum[:])}, true
}

// Listed reports whether metadata this Index learned from lists the file
// under key (a name that says its own checksum does not count).
func (ix *Index) Listed(key string) bool {
	ix.mu.RLock()
	_, ok := ix.sums.get(keyHash(key))
	ix.mu.RUnlock()
	return ok
}

// withSize is the checksum a key names, with the size learned for it if any.
func (ix *Index) withSize(key, sum string) Sum {
	ix.mu.RLock()
	e, ok := ix.sums.get(keyHash(key))
	ix.mu.RUnlock()
	if ok && hex.EncodeToString(e.sum[:]) == sum {
		return Sum{Size: e.size, SHA256: sum}
	}
	return Sum{Size: -1, SHA256: sum}
}

// set records what the file under key must be; a later promise replaces an
// earlier one (a newer Packages for a replaced .deb).
func (ix *Index) set(key string, size int64, sha string) {
	h := keyHash(key)
	ix.mu.RLock()
	kept := ix.sums.keeps(h)
	ix.mu.RUnlock()
	if !kept {
		return
	}
	sum, ok := decodeSum(sha)
	if !ok {
		return
	}
	ix.mu.Lock()
	ix.sums.set(h, entry{size: size, sum: sum})
	ix.mu.Unlock()
	if ix.onSet != nil {
		ix.onSet(key, Sum{Size: size, SHA256: sha})
	}
}

// setKind records that the file under key is the index named name (e.g.
// "main/binary-amd64/Packages.xz"), for keys whose names do not say.
func (ix *Index) setKind(key, name string) {
	ix.mu.Lock()
	ix.kind[key] = name
	ix.mu.Unlock()
}

// kindOf is the name of the metadata file under key: its own base name, or
// what a Release said of its by-hash key.
func (ix *Index) kindOf(key string) string {
	ix.mu.RLock()
	name, ok := ix.kind[key]
	ix.mu.RUnlock()
	if ok {
		return path.Base(name)
	}
	return path.Base(key)
}

// Len is the number of checksums learned.
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.sums.len()
}

// decodeSum decodes a SHA-256 in lowercase hex. It runs once per package of
// a whole archive: one pass, no allocation.
func decodeSum(sha string) (sum [32]byte, ok bool) {
	if len(sha) != 2*len(sum) {
		return sum, false
	}
	for i := range sum {
		hi, lo := unhex(sha[2*i]), unhex(sha[2*i+1])
		if hi > 15 || lo > 15 {
			return sum, false
		}
		sum[i] = hi<<4 | lo
	}
	return sum, true
}

// unhex is the value of the lowercase hex digit c, or 255.
func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return 255
}

func keyHash(key string) uint64 {
	var b [256]byte // on the stack for most keys: no allocation a lookup
	s := sha256.Sum256(append(b[:0], key...))
	return binary.LittleEndian.Uint64(s[:8])
}
