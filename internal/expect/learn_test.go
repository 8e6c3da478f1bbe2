package expect

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vzpkg2/internal/repotest"
)

// learnFile lets ix learn the repository file rel of root under key.
func learnFile(t *testing.T, ix *Index, key, file string) {
	t.Helper()
	err := ix.Learn(key, func() (io.ReadCloser, error) { return os.Open(file) })
	if err != nil {
		t.Fatalf("Learn(%s): %v", key, err)
	}
}

// wantExpect checks that ix expects key to be the file on disk.
func wantExpect(t *testing.T, ix *Index, key, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	got, ok := ix.Expect(key)
	if !ok || got.SHA256 != hex.EncodeToString(sum[:]) || got.Size != int64(len(data)) {
		t.Errorf("Expect(%s) = %+v, %v; want %d bytes, sha256 %x", key, got, ok, len(data), sum)
	}
}

func TestLearnAptRepository(t *testing.T) {
	root := t.TempDir()
	repo := repotest.BuildAptRepo(t, root, "stable", []repotest.Deb{
		{Name: "app", Version: "1:1.0+dfsg-1", Size: 2048},
		{Name: "libbig", Version: "2.0-1", Size: 64 << 10},
	})
	ix := New()
	const base = "mirror.example/debian" // a key prefix: host and archive root
	learnFile(t, ix, base+"/dists/stable/InRelease", filepath.Join(root, "dists/stable/InRelease"))
	indexDir := filepath.Join(root, repo.IndexDir())
	wantExpect(t, ix, base+"/"+repo.IndexDir()+"/Packages.xz", filepath.Join(indexDir, "Packages.xz"))

	// apt fetches the index by-hash: the Release said what that file is.
	xz, _ := os.ReadFile(filepath.Join(indexDir, "Packages.xz"))
	sum := sha256.Sum256(xz)
	byHash := base + "/" + repo.IndexDir() + "/by-hash/SHA256/" + hex.EncodeToString(sum[:])
	wantExpect(t, ix, byHash, filepath.Join(indexDir, "Packages.xz"))
	learnFile(t, ix, byHash, filepath.Join(indexDir, "Packages.xz"))
	for _, rel := range repo.Debs {
		wantExpect(t, ix, base+"/"+rel, filepath.Join(root, rel))
	}

	// The same files under a path_map name.
	ix2 := New()
	learnFile(t, ix2, "debian:/dists/stable/main/binary-amd64/Packages.gz", filepath.Join(indexDir, "Packages.gz"))
	wantExpect(t, ix2, "debian:/"+repo.Debs["libbig"], filepath.Join(root, repo.Debs["libbig"]))
}

func TestLearnRPMRepository(t *testing.T) {
	root := t.TempDir()
	repo := repotest.BuildRPMRepo(t, root, []repotest.RPM{
		{Name: "app", Version: "1.0", Release: "1", Requires: []string{"libbig"}, Size: 2048},
		{Name: "libbig", Version: "2.0", Release: "1", Size: 64 << 10},
	})
	ix := New()
	const base = "mirror.example/fedora/42/Everything/x86_64/os"
	learnFile(t, ix, base+"/repodata/repomd.xml", filepath.Join(root, "repodata/repomd.xml"))
	primaries, _ := filepath.Glob(filepath.Join(root, "repodata/*-primary.xml.*"))
	if len(primaries) != 1 {
		t.Fatalf("primary files: %v", primaries)
	}
	primaryKey := base + "/repodata/" + filepath.Base(primaries[0])
	wantExpect(t, ix, primaryKey, primaries[0])
	learnFile(t, ix, primaryKey, primaries[0])
	for _, rel := range repo.RPMs {
		wantExpect(t, ix, base+"/"+rel, filepath.Join(root, rel))
	}
}

func TestLearnIgnoresOtherFiles(t *testing.T) {
	ix := New()
	err := ix.Learn("deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", func() (io.ReadCloser, error) {
		t.Error("a package was opened to learn from")
		return io.NopCloser(strings.NewReader("")), nil
	})
	if err != nil || ix.Len() != 0 {
		t.Errorf("Learn of a package: %v, %d sums", err, ix.Len())
	}

	// A Release that lists itself (some hand-made repositories do) does not pin the next Release.
	self := "Suite: stable\nSHA256:\n " + strings.Repeat("ab", 32) + " 111 Release\n " + strings.Repeat("cd", 32) + " 12 main/binary-amd64/Packages\n"
	if err := ix.Learn("h/debian/dists/stable/Release", func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(self)), nil }); err != nil {
		t.Fatal(err)
	}
	if _, ok := ix.Expect("h/debian/dists/stable/Release"); ok {
		t.Error("a Release's own entry became an expectation for the next Release")
	}
	if _, ok := ix.Expect("h/debian/dists/stable/main/binary-amd64/Packages"); !ok {
		t.Error("the index the Release lists was not learned")
	}
	bad := "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nSHA256:\n abc 12\n"
	err = ix.Learn("h/debian/dists/stable/InRelease", func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(bad)), nil })
	if err == nil || !strings.Contains(err.Error(), "line 5") {
		t.Errorf("Learn of a broken Release: %v, want an error naming line 5", err)
	}
}

func TestNewForKeepsOnlyItsKeys(t *testing.T) {
	root := t.TempDir()
	repo := repotest.BuildAptRepo(t, root, "stable", []repotest.Deb{
		{Name: "app", Version: "1.0-1", Size: 2048},
		{Name: "libbig", Version: "2.0-1", Size: 64 << 10},
	})
	const base = "mirror.example/debian"
	app, libbig := base+"/"+repo.Debs["app"], base+"/"+repo.Debs["libbig"]
	ix := NewFor([]string{app})
	learnFile(t, ix, base+"/"+repo.IndexDir()+"/Packages.gz", filepath.Join(root, repo.IndexDir(), "Packages.gz"))
	wantExpect(t, ix, app, filepath.Join(root, repo.Debs["app"]))
	if ix.Listed(libbig) || ix.Len() != 1 {
		t.Errorf("an Index for %s alone knows %d files, libbig listed: %v", app, ix.Len(), ix.Listed(libbig))
	}
}
