package disk

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

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

// A crash leaves temp files and, between the two renames of a commit, a body
// whose metadata describes another one. A restart serves neither.
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
	put := func(key, body string) {
		w, _ := s.Create(ctx, key)
		w.Write([]byte(body))
		if _, err := w.Commit(ctx, store.Info{}); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	put("whole", "complete body")
	put("torn", "old body")
	// Simulate a crash between the body rename and the metadata rename of a
	// replacement: a new body of the same size under the old metadata.
	body, _ := s.paths("torn")
	next := filepath.Join(root, "tmp", "next")
	os.WriteFile(next, []byte("new body"), 0o644)
	if err := os.Rename(next, body); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s2 := open(t, root)
	if left, _ := os.ReadDir(filepath.Join(root, "tmp")); len(left) != 0 {
		t.Errorf("temp area holds %d leftovers after restart, want 0", len(left))
	}
	if _, err := s2.Open(ctx, "partial"); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("partial write visible after restart: %v", err)
	}
	if _, err := s2.Open(ctx, "torn"); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("body with mismatched metadata served: %v", err)
	}
	if info, err := s2.Stat(ctx, "whole"); err != nil || info.Size != int64(len("complete body")) {
		t.Errorf("committed object after restart: got %+v, %v", info, err)
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
