package expect

import (
	"math/rand/v2"
	"testing"
)

// The table answers as a map would, across merges and overwrites.
func TestTableIsAMap(t *testing.T) {
	tb, want := newTable(), map[uint64]entry{}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 50_000 {
		h := r.Uint64N(20_000) // overwrites, before and after merges
		e := entry{size: int64(i)}
		e.sum[0] = byte(i)
		tb.set(h, e)
		want[h] = e
		if i%997 == 0 {
			for probe := range uint64(20_000) {
				got, ok := tb.get(probe)
				w, wok := want[probe]
				if ok != wok || got != w {
					t.Fatalf("after %d sets, get(%d) = %v, %v; want %v, %v", i+1, probe, got, ok, w, wok)
				}
			}
		}
	}
	if tb.len() != len(want) {
		t.Errorf("len %d, want %d", tb.len(), len(want))
	}
}
