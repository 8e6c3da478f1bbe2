package signed

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vzpkg2/internal/repotest"
	"vzpkg2/internal/store"
	"vzpkg2/internal/store/disk"
)

func TestCheck(t *testing.T) {
	repo := repotest.BuildAptRepo(t, t.TempDir(), "stable", []repotest.Deb{{Name: "app", Version: "1", Size: 512}})
	inRelease, err := os.ReadFile(filepath.Join(repo.Root, "dists/stable/InRelease"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := Load([]string{repo.Keyring}, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check("h/debian/dists/stable/InRelease", bytes.NewReader(inRelease)); err != nil {
		t.Errorf("a correctly signed InRelease was refused: %v", err)
	}
	tampered := bytes.Replace(inRelease, []byte("Suite: stable"), []byte("Suite: stablf"), 1)
	if err := c.Check("h/debian/dists/stable/InRelease", bytes.NewReader(tampered)); !errors.Is(err, ErrBadSignature) {
		t.Errorf("a tampered InRelease: %v, want ErrBadSignature", err)
	}
	if err := c.Check("h/debian/dists/stable/InRelease", strings.NewReader("Suite: stable\n")); !errors.Is(err, ErrBadSignature) {
		t.Errorf("an unsigned InRelease: %v, want ErrBadSignature", err)
	}
	if err := c.Check("h/debian/dists/stable/Packages", strings.NewReader("anything")); err != nil {
		t.Errorf("a file that is not signed metadata was checked: %v", err)
	}

	// Release.gpg is checked against the Release stored beside it; a bad one takes the Release with it.
	release, _ := os.ReadFile(filepath.Join(repo.Root, "dists/stable/Release"))
	sig, _ := os.ReadFile(filepath.Join(repo.Root, "dists/stable/Release.gpg"))
	put := func(key string, body []byte) {
		w, _ := st.Create(context.Background(), key)
		w.Write(body)
		if _, err := w.Commit(context.Background(), store.Info{}); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	put("h/debian/dists/stable/Release", release)
	if err := c.Check("h/debian/dists/stable/Release.gpg", bytes.NewReader(sig)); err != nil {
		t.Errorf("a good Release.gpg was refused: %v", err)
	}
	put("h/debian/dists/stable/Release", bytes.Replace(release, []byte("Suite: stable"), []byte("Suite: stablf"), 1))
	if err := c.Check("h/debian/dists/stable/Release.gpg", bytes.NewReader(sig)); !errors.Is(err, ErrBadSignature) {
		t.Errorf("Release.gpg of a tampered Release: %v, want ErrBadSignature", err)
	}
	if _, err := st.Stat(context.Background(), "h/debian/dists/stable/Release"); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("the Release a bad signature was for is still stored: %v", err)
	}
	if _, err := Load([]string{filepath.Join(t.TempDir(), "missing.gpg")}, st); err == nil {
		t.Error("a missing keyring was accepted")
	}
	empty := filepath.Join(t.TempDir(), "empty.gpg")
	os.WriteFile(empty, nil, 0o644)
	if _, err := Load([]string{empty}, st); err == nil {
		t.Error("an empty keyring was accepted")
	}
}
