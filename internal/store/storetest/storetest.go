// Package storetest is the conformance suite every store.Store passes.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"vzpkg2/internal/store"
)

// Run checks the store.Store contract against stores made by newStore.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	body := []byte("the body of a package file")
	sum := sha256.Sum256(body)

	t.Run("invisible until commit", func(t *testing.T) {
		s := newStore(t)
		w, err := s.Create(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		w.Write(body[:5])
		if _, err := s.Open(ctx, "k"); !errors.Is(err, store.ErrNotExist) {
			t.Fatalf("Open before commit: got %v, want ErrNotExist", err)
		}
		got := make([]byte, 5)
		if _, err := w.ReadAt(got, 0); err != nil || !bytes.Equal(got, body[:5]) {
			t.Fatalf("ReadAt of written bytes: got %q, %v", got, err)
		}
		w.Write(body[5:])
		if w.SHA256() != hex.EncodeToString(sum[:]) {
			t.Errorf("Writer.SHA256 = %s before commit, want the body's", w.SHA256())
		}
		lm := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		info, err := w.Commit(ctx, store.Info{ContentType: "application/x-deb", LastModified: lm, ETag: `"e"`})
		if err != nil {
			t.Fatal(err)
		}
		if info.Size != int64(len(body)) || info.SHA256 != hex.EncodeToString(sum[:]) || info.Key != "k" {
			t.Errorf("Commit returned %+v, want size %d and the body's sha256", info, len(body))
		}
		o, err := s.Open(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		b, _ := io.ReadAll(o)
		if !bytes.Equal(b, body) {
			t.Errorf("got body %q, want %q", b, body)
		}
		if got := o.Info(); !got.LastModified.Equal(lm) || got.ContentType != "application/x-deb" || got.ETag != `"e"` {
			t.Errorf("got info %+v", got)
		}
	})

	t.Run("cancel discards", func(t *testing.T) {
		s := newStore(t)
		w, _ := s.Create(ctx, "k")
		w.Write(body)
		if err := w.Cancel(ctx); err != nil {
			t.Fatal(err)
		}
		w.Close()
		if _, err := s.Stat(ctx, "k"); !errors.Is(err, store.ErrNotExist) {
			t.Errorf("Stat after cancel: got %v, want ErrNotExist", err)
		}
	})

	t.Run("replace, set info, delete, walk", func(t *testing.T) {
		s := newStore(t)
		put(t, s, "a", []byte("old"))
		put(t, s, "a", body)
		put(t, s, "b/with/slashes?q=1", []byte("x"))
		info, err := s.Stat(ctx, "a")
		if err != nil || info.Size != int64(len(body)) {
			t.Fatalf("Stat after replace: got %+v, %v", info, err)
		}
		v := time.Date(2026, 5, 5, 5, 5, 5, 0, time.UTC)
		info.Validated = v
		if err := s.SetInfo(ctx, info); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Stat(ctx, "a"); !got.Validated.Equal(v) {
			t.Errorf("got Validated %v after SetInfo, want %v", got.Validated, v)
		}
		bad := info
		bad.Size++
		if err := s.SetInfo(ctx, bad); err == nil {
			t.Error("SetInfo with a different size succeeded")
		}
		keys := map[string]bool{}
		s.Walk(ctx, func(i store.Info) error { keys[i.Key] = true; return nil })
		if len(keys) != 2 || !keys["a"] || !keys["b/with/slashes?q=1"] {
			t.Errorf("Walk saw %v, want a and b/with/slashes?q=1", keys)
		}
		if err := s.Delete(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "never"); err != nil {
			t.Errorf("Delete of a missing key: %v", err)
		}
		if _, err := s.Open(ctx, "a"); !errors.Is(err, store.ErrNotExist) {
			t.Errorf("Open after Delete: got %v", err)
		}
	})

	t.Run("readers keep the body they opened", func(t *testing.T) {
		s := newStore(t)
		put(t, s, "k", []byte("first"))
		o, err := s.Open(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		put(t, s, "k", []byte("second version"))
		b, _ := io.ReadAll(o)
		if string(b) != "first" {
			t.Errorf("an open reader saw %q after a replace, want %q", b, "first")
		}
	})

	t.Run("concurrent writers to one key", func(t *testing.T) {
		s := newStore(t)
		const writers = 8
		bodies := make([][]byte, writers)
		var wg sync.WaitGroup
		for i := range writers {
			bodies[i] = bytes.Repeat([]byte{byte('a' + i)}, 100_000+i)
			wg.Go(func() {
				w, err := s.Create(ctx, "k")
				if err != nil {
					t.Error(err)
					return
				}
				defer w.Close()
				for off := 0; off < len(bodies[i]); off += 4096 {
					w.Write(bodies[i][off:min(off+4096, len(bodies[i]))])
				}
				if _, err := w.Commit(ctx, store.Info{}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		o, err := s.Open(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		b, _ := io.ReadAll(o)
		info := o.Info()
		sum := sha256.Sum256(b)
		if !slices.ContainsFunc(bodies, func(w []byte) bool { return bytes.Equal(w, b) }) ||
			info.Size != int64(len(b)) || info.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("after %d concurrent commits the key holds %d bytes starting %q (info size %d): not one writer's whole body with its own info", writers, len(b), b[:min(len(b), 8)], info.Size)
		}
	})

	t.Run("large body", func(t *testing.T) {
		s := newStore(t)
		const size = 64<<20 + 3
		chunk := make([]byte, 1<<20)
		h := sha256.New()
		w, err := s.Create(ctx, "big")
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		for written := 0; written < size; {
			n := min(len(chunk), size-written)
			for i := range chunk[:n] {
				chunk[i] = byte(written + i*7)
			}
			w.Write(chunk[:n])
			h.Write(chunk[:n])
			written += n
		}
		info, err := w.Commit(ctx, store.Info{})
		if err != nil {
			t.Fatal(err)
		}
		want := hex.EncodeToString(h.Sum(nil))
		o, err := s.Open(ctx, "big")
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		h.Reset()
		n, err := io.Copy(h, o)
		if err != nil || n != size || info.Size != size || info.SHA256 != want || hex.EncodeToString(h.Sum(nil)) != want {
			t.Errorf("a %d-byte body reads back as %d bytes (%v), info %d bytes %s, want sha256 %s", size, n, err, info.Size, info.SHA256, want)
		}
		tail := make([]byte, 3)
		if _, err := o.ReadAt(tail, size-3); err != nil {
			t.Errorf("ReadAt at the end of a large body: %v", err)
		}
	})

	t.Run("reads while a commit happens", func(t *testing.T) {
		s := newStore(t)
		old, next := bytes.Repeat([]byte("o"), 50_000), bytes.Repeat([]byte("n"), 70_000)
		put(t, s, "k", old)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					o, err := s.Open(ctx, "k")
					if err != nil {
						t.Errorf("Open while the key is replaced: %v", err)
						return
					}
					b, _ := io.ReadAll(o)
					o.Close()
					if !bytes.Equal(b, old) && !bytes.Equal(b, next) {
						t.Errorf("a reader got %d bytes starting %q: neither the old body nor the new one", len(b), b[:min(len(b), 8)])
						return
					}
				}
			})
		}
		for i := range 20 {
			put(t, s, "k", [][]byte{next, old}[i%2])
		}
		close(stop)
		wg.Wait()
	})

	t.Run("link names a stored body under another key", func(t *testing.T) {
		s := newStore(t)
		put(t, s, "a", body)
		sumHex := hex.EncodeToString(sum[:])
		lm := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
		info, err := s.Link(ctx, "b", store.Info{SHA256: sumHex, Size: -1, ContentType: "application/x-rpm", LastModified: lm})
		if err != nil {
			t.Fatal(err)
		}
		if info.Key != "b" || info.Size != int64(len(body)) || info.SHA256 != sumHex {
			t.Errorf("Link returned %+v, want key b with the body's size and checksum", info)
		}
		o, err := s.Open(ctx, "b")
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		if b, _ := io.ReadAll(o); !bytes.Equal(b, body) || o.Info().ContentType != "application/x-rpm" || !o.Info().LastModified.Equal(lm) {
			t.Errorf("the linked key reads %q with info %+v, want the body and Link's metadata", b, o.Info())
		}
		other := sha256.Sum256([]byte("never stored"))
		for _, bad := range []store.Info{
			{SHA256: sumHex, Size: int64(len(body)) + 1},
			{SHA256: hex.EncodeToString(other[:]), Size: -1},
			{SHA256: "../../../etc/passwd", Size: -1},
		} {
			if _, err := s.Link(ctx, "c", bad); !errors.Is(err, store.ErrNotExist) {
				t.Errorf("Link of %+v: got %v, want ErrNotExist", bad, err)
			}
		}
		if _, err := s.Open(ctx, "c"); !errors.Is(err, store.ErrNotExist) {
			t.Errorf("a refused Link left key c: %v", err)
		}
	})

	t.Run("cancel keeps the committed body", func(t *testing.T) {
		s := newStore(t)
		put(t, s, "k", body)
		w, err := s.Create(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("a replacement that never commits"))
		if err := w.Cancel(ctx); err != nil {
			t.Fatal(err)
		}
		w.Close()
		o, err := s.Open(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		if b, _ := io.ReadAll(o); !bytes.Equal(b, body) {
			t.Errorf("after a cancelled replacement the key holds %q, want the committed %q", b, body)
		}
	})
}

func put(t *testing.T, s store.Store, key string, body []byte) {
	t.Helper()
	w, err := s.Create(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write(body)
	if _, err := w.Commit(context.Background(), store.Info{}); err != nil {
		t.Fatal(err)
	}
}
