// Package expire keeps a package cache from growing for ever: a pass
// removes the files no cached metadata references any more and no client
// has asked for in a while, then, over a size cap, the least recently used
// packages.
//
// What is referenced is read afresh from the metadata in the cache, and the
// cache only ever holds metadata that arrived whole and checked: an index
// that failed to fetch or to verify left the one before it in place, and
// that one is believed until its replacement is cached, so a failed update
// never removes anything. A release no client has asked about for the
// maximum age (its InRelease or repomd.xml unused) goes with what only it
// referenced.
package expire

import (
	"cmp"
	"context"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"vzpkg2/internal/cachekey"
	"vzpkg2/internal/expect"
	"vzpkg2/internal/store"
)

// Store is what a pass needs of a store.
type Store interface {
	Walk(ctx context.Context, fn func(store.Info) error) error
	Open(ctx context.Context, key string) (store.Object, error)
	Delete(ctx context.Context, key string) error
}

// Policy says what a pass removes.
type Policy struct {
	MaxAge  time.Duration // a file unused this long goes unless metadata references it; 0: none goes by age
	MaxSize int64         // then the least recently used go until the cache holds at most this; 0: no cap
}

// Report is what a pass removed (or would remove, in a dry run).
type Report struct {
	Removed []store.Info     // in the order they went
	Freed   int64            // bytes of the bodies no key names any more
	Kept    int              // files kept
	Size    int64            // bytes the kept files' bodies take
	ByRepo  map[string]int64 // bytes of the kept files, by repository (a body two share counts in both)
}

// topLevel are the metadata files a client asks for first, which say what
// the rest of a repository is.
var topLevel = map[string]bool{"InRelease": true, "Release": true, "Release.gpg": true, "repomd.xml": true, "repomd.xml.asc": true}

// Run makes one pass over st at now, taking last use from used (or, for a
// file asked for before usage was recorded, from when it was stored or last
// revalidated). With dryRun it only reports. The caller collects the bodies
// no key names any more (disk.Store.GC).
func Run(ctx context.Context, st Store, used *Usage, now time.Time, p Policy, dryRun bool) (Report, error) {
	var entries []store.Info
	err := st.Walk(ctx, func(info store.Info) error {
		if len(entries) == cap(entries) {
			// Doubling: a whole cache's entries, copied as few times as can be.
			entries = slices.Grow(entries, max(len(entries), 1024))
		}
		entries = append(entries, info)
		return nil
	})
	if err != nil {
		return Report{}, err
	}
	lastUse := func(info store.Info) time.Time {
		if t, ok := used.Last(info.Key); ok && t.After(info.Validated) {
			return t
		}
		return info.Validated
	}
	old := func(info store.Info) bool { return p.MaxAge > 0 && now.Sub(lastUse(info)) > p.MaxAge }
	gone := map[string]bool{}

	// Retired releases first: their top-level metadata, unused for MaxAge.
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = e.Key
	}
	ix := expect.NewFor(keys) // what the indexes say of the files in the cache
	keys = nil
	learn := func(info store.Info) {
		// An index that cannot be read references nothing; what it
		// would have kept is kept by its age alone.
		ix.Learn(info.Key, func() (io.ReadCloser, error) { return st.Open(ctx, info.Key) })
	}
	for _, e := range entries {
		switch {
		case !topLevel[path.Base(e.Key)]:
		case old(e):
			gone[e.Key] = true
		default:
			learn(e)
		}
	}
	// Then the indexes the kept releases list, and what they list. An
	// index a release no longer lists is still believed while the one
	// that replaces it is not cached (it failed to fetch or to verify):
	// clients still see the old one.
	replaced := map[string]bool{}        // index directories holding a listed index
	listed := make([]bool, len(entries)) // by a kept release
	for i, e := range entries {
		if listed[i] = !topLevel[path.Base(e.Key)] && ix.Listed(e.Key); listed[i] && index(ix, e.Key) {
			replaced[indexDir(e.Key)] = true
		}
	}
	believed := map[string]bool{}
	for i, e := range entries {
		if topLevel[path.Base(e.Key)] {
			continue
		}
		switch {
		case listed[i]:
			learn(e)
		case index(ix, e.Key) && !replaced[indexDir(e.Key)]:
			believed[e.Key] = true
			if name := byHashName(ctx, st, e.Key); name != "" {
				ix.LearnAs(e.Key, name, func() (io.ReadCloser, error) { return st.Open(ctx, e.Key) })
			} else {
				learn(e)
			}
		}
	}
	for _, e := range entries {
		if gone[e.Key] || topLevel[path.Base(e.Key)] || !old(e) {
			continue
		}
		if want, _ := ix.Expect(e.Key); !believed[e.Key] && !ix.Listed(e.Key) || ix.Listed(e.Key) && want.SHA256 != e.SHA256 {
			gone[e.Key] = true // unreferenced, or replaced upstream by other bytes
		}
	}

	// Over the cap, the least recently used go: files no index needs
	// first, then the rest.
	refs := map[string]int{}
	for _, e := range entries {
		if !gone[e.Key] {
			refs[e.SHA256]++
		}
	}
	size := func() (n int64) {
		seen := map[string]bool{}
		for _, e := range entries {
			if !gone[e.Key] && !seen[e.SHA256] {
				seen[e.SHA256] = true
				n += e.Size
			}
		}
		return n
	}
	if p.MaxSize > 0 {
		total := size()
		order := slices.Clone(entries)
		slices.SortStableFunc(order, func(a, b store.Info) int {
			return cmp.Or(cmp.Compare(metadata(ix, a.Key), metadata(ix, b.Key)), lastUse(a).Compare(lastUse(b)))
		})
		for _, e := range order {
			if total <= p.MaxSize {
				break
			}
			if gone[e.Key] {
				continue
			}
			gone[e.Key] = true
			if refs[e.SHA256]--; refs[e.SHA256] == 0 {
				total -= e.Size
			}
		}
	}

	r := Report{ByRepo: map[string]int64{}}
	freed := map[string]bool{}
	for _, e := range entries {
		if !gone[e.Key] {
			r.Kept++
			r.ByRepo[cachekey.Repository(e.Key)] += e.Size
			continue
		}
		if !dryRun {
			if err := st.Delete(ctx, e.Key); err != nil {
				return r, err
			}
			used.Forget(e.Key)
		}
		r.Removed = append(r.Removed, e)
		if refs[e.SHA256] == 0 && !freed[e.SHA256] {
			freed[e.SHA256] = true
			r.Freed += e.Size
		}
	}
	r.Size = size()
	return r, nil
}

// index reports whether the file under key is an index of packages or of
// other indexes: by its name, or by being a by-hash file.
func index(ix *expect.Index, key string) bool {
	return ix.IsIndex(key) || strings.Contains(key, "/by-hash/")
}

// indexDir is the directory an index belongs to: by-hash files belong to
// the directory above by-hash/.
func indexDir(key string) string {
	dir := cachekey.Dir(key)
	if i := strings.LastIndex(dir, "/by-hash/"); i >= 0 {
		return dir[:i]
	}
	return dir
}

// byHashName is the index name of the by-hash file under key whose Release
// is gone, from its directory and its first bytes ("Packages.xz" in a
// binary-ARCH directory, say); "" when it is not a by-hash file of packages
// or sources.
func byHashName(ctx context.Context, st Store, key string) string {
	if !strings.Contains(key, "/by-hash/") {
		return ""
	}
	var base string
	switch dir := path.Base(indexDir(key)); {
	case strings.HasPrefix(dir, "binary-"):
		base = "Packages"
	case dir == "source":
		base = "Sources"
	default:
		return ""
	}
	f, err := st.Open(ctx, key)
	if err != nil {
		return ""
	}
	defer f.Close()
	magic := make([]byte, 6)
	n, _ := io.ReadFull(f, magic)
	for ext, m := range map[string]string{".xz": "\xfd7zXZ\x00", ".gz": "\x1f\x8b", ".bz2": "BZh", ".zst": "\x28\xb5\x2f\xfd"} {
		if strings.HasPrefix(string(magic[:n]), m) {
			return base + ext
		}
	}
	return base
}

// metadata orders files for eviction: 0 for those no other file depends on,
// 1 for metadata.
func metadata(ix *expect.Index, key string) int {
	if topLevel[path.Base(key)] || ix.IsIndex(key) {
		return 1
	}
	return 0
}
