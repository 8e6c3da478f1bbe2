package disk

import (
	"sync"

	"vzpkg2/internal/store"
)

// smallBodies keeps small bodies in memory, keyed by their SHA-256, so a hot
// small file is served without opening it. A body is checked against its
// name when read in; blobs never change, so a copy stays valid. Bounded by
// smallBodiesBytes in all: when full, arbitrary entries make room.
type smallBodies struct {
	mu    sync.RWMutex
	m     map[string][]byte
	bytes int
}

const (
	smallBodyMax     = 64 << 10 // bodies up to this size are kept
	smallBodiesBytes = 4 << 20  // at most this much in all
)

func (c *smallBodies) get(sum string) ([]byte, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	b, ok := c.m[sum]
	return b, ok
}

func (c *smallBodies) put(sum string, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string][]byte{}
	}
	if _, ok := c.m[sum]; ok {
		return
	}
	for k, old := range c.m {
		if c.bytes+len(b) <= smallBodiesBytes {
			break
		}
		delete(c.m, k)
		c.bytes -= len(old)
	}
	c.m[sum] = b
	c.bytes += len(b)
}

func (c *smallBodies) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
	c.bytes = 0
}

// recentInfos holds index entries read lately, keyed by key, so a hot file
// costs no index read and decode. It is bounded: when full, an arbitrary
// entry makes room. It is filled only from disk reads: every index write or
// removal forgets the key after changing the file and bumps gen, and a read
// that began before a change is not kept.
type recentInfos struct {
	mu  sync.RWMutex
	m   map[string]store.Info
	gen uint64 // changes so far
}

// recentEntries bounds recentInfos: a few MB at most.
const recentEntries = 4096

// get returns key's entry if held, else the generation to pass to put after
// reading it from disk.
func (r *recentInfos) get(key string) (store.Info, uint64, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	info, ok := r.m[key]
	return info, r.gen, ok
}

// put keeps info read from disk unless something changed since get.
func (r *recentInfos) put(info store.Info, gen uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if gen != r.gen {
		return
	}
	if r.m == nil {
		r.m = map[string]store.Info{}
	}
	if len(r.m) >= recentEntries {
		for k := range r.m {
			delete(r.m, k)
			break
		}
	}
	r.m[info.Key] = info
}

// forget drops key (all keys when key is empty) after its entry changed on disk.
func (r *recentInfos) forget(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gen++
	if key == "" {
		clear(r.m)
	} else {
		delete(r.m, key)
	}
}

var _ store.Store = (*Store)(nil)
