package signed

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vzpkg2/internal/repotest"
)

func TestCheck(t *testing.T) {
	repo := repotest.BuildAptRepo(t, t.TempDir(), "stable", []repotest.Deb{{Name: "app", Version: "1", Size: 512}})
	inRelease, err := os.ReadFile(filepath.Join(repo.Root, "dists/stable/InRelease"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load([]string{repo.Keyring})
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
	if err := c.Check("h/debian/dists/stable/Release", strings.NewReader("anything")); err != nil {
		t.Errorf("a file that is not InRelease was checked: %v", err)
	}
	if _, err := Load([]string{filepath.Join(t.TempDir(), "missing.gpg")}); err == nil {
		t.Error("a missing keyring was accepted")
	}
	empty := filepath.Join(t.TempDir(), "empty.gpg")
	os.WriteFile(empty, nil, 0o644)
	if _, err := Load([]string{empty}); err == nil {
		t.Error("an empty keyring was accepted")
	}
}
