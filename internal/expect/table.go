package expect

import (
	"cmp"
	"math"
	"slices"
)

// table maps key hashes to entries in about 48 bytes an entry (a Go map
// took 112): a sorted slice searched by bisection holds the bulk, and a
// small map the entries learned since it was last merged in. A cache of
// several releases of several distributions knows hundreds of thousands of
// checksums. It is not safe for concurrent use.
type table struct {
	sorted []rec            // by h, each h once
	recent map[uint64]entry // not in sorted yet, or newer than its entry there
	fixed  map[uint64]entry // in a table for given hashes: each of them, unset until set (the others unused)
}

type rec struct {
	h uint64
	entry
}

func newTable() table { return table{recent: map[uint64]entry{}} }

// unset is the size of an entry of a fixed table not set yet.
const unset = math.MinInt64

// newTableFor returns a table that keeps the entries of hs alone: a map,
// as they are few beside what the indexes list.
func newTableFor(hs []uint64) table {
	t := table{fixed: make(map[uint64]entry, len(hs))}
	for _, h := range hs {
		t.fixed[h] = entry{size: unset}
	}
	return t
}

func (t *table) get(h uint64) (entry, bool) {
	if t.fixed != nil {
		e, ok := t.fixed[h]
		return e, ok && e.size != unset
	}
	if e, ok := t.recent[h]; ok {
		return e, true
	}
	if i, ok := t.find(h); ok {
		return t.sorted[i].entry, true
	}
	return entry{}, false
}

// keeps reports whether set keeps an entry for h.
func (t *table) keeps(h uint64) bool {
	if t.fixed == nil {
		return true
	}
	_, ok := t.fixed[h]
	return ok
}

func (t *table) find(h uint64) (int, bool) {
	return slices.BinarySearchFunc(t.sorted, h, func(r rec, h uint64) int { return cmp.Compare(r.h, h) })
}

// set records e for h, merging the recent entries into the sorted slice
// once they are an eighth of it.
func (t *table) set(h uint64, e entry) {
	if t.fixed != nil {
		if _, ok := t.fixed[h]; ok {
			t.fixed[h] = e
		}
		return
	}
	t.recent[h] = e
	if len(t.recent) > max(1024, len(t.sorted)/8) {
		t.merge()
	}
}

// merge moves the recent entries into the sorted slice, in place from its
// end: the slice grows by the new entries only.
func (t *table) merge() {
	add := make([]rec, 0, len(t.recent))
	for h, e := range t.recent {
		if i, ok := t.find(h); ok {
			t.sorted[i].entry = e
		} else {
			add = append(add, rec{h, e})
		}
	}
	clear(t.recent)
	slices.SortFunc(add, func(a, b rec) int { return cmp.Compare(a.h, b.h) })
	i, j := len(t.sorted)-1, len(add)-1
	t.sorted = slices.Grow(t.sorted, len(add))[:len(t.sorted)+len(add)]
	for k := len(t.sorted) - 1; j >= 0; k-- {
		if i >= 0 && t.sorted[i].h > add[j].h {
			t.sorted[k] = t.sorted[i]
			i--
		} else {
			t.sorted[k] = add[j]
			j--
		}
	}
}

func (t *table) len() int {
	if t.fixed != nil {
		n := 0
		for _, e := range t.fixed {
			if e.size != unset {
				n++
			}
		}
		return n
	}
	n := len(t.sorted)
	for h := range t.recent {
		if _, ok := t.find(h); !ok {
			n++
		}
	}
	return n
}
