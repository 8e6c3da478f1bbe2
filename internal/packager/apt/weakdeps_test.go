package apt_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"vzpkg2/internal/packager"
	"vzpkg2/internal/packager/apt"
	"vzpkg2/internal/repotest"
)

// TestWeakDepsInstallRecommends bootstraps, from a local repository only
// (mmdebstrap's extract variant: no essential packages), a package that
// recommends another: the recommended one comes only with WeakDeps. The
// root is on disk, where Bootstrap adds the eatmydata hook to variants with
// a dpkg to wrap, not to this one. (Needs root, mmdebstrap, dpkg-dev,
// apt-utils, eatmydata and gnupg.)
func TestWeakDepsInstallRecommends(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	repo := repotest.BuildAptRepo(t, dir, "vztest", []repotest.Deb{
		{Name: "vz-tool", Version: "1.0", Recommends: []string{"vz-extra"}, Size: 64},
		{Name: "vz-extra", Version: "1.0", Size: 64},
	})
	up := repotest.NewUpstream(t, dir)
	for _, weak := range []bool{false, true} {
		t.Run(fmt.Sprintf("weak_deps=%v", weak), func(t *testing.T) {
			root := t.TempDir()
			spec := &packager.Spec{
				Name: "vztest-1-x86_64", Arch: "x86_64", ArchName: "amd64", Suite: "vztest", Variant: "extract",
				Repos:    []packager.Repo{{Name: "vztest", Mirrors: []string{up.URL() + "/"}, Suites: []string{"vztest"}, Components: []string{"main"}}},
				Keys:     []string{repo.Keyring},
				Packages: []string{"vz-tool"},
				WeakDeps: weak,
			}
			env := packager.Env{}
			if testing.Verbose() {
				env = packager.Env{Verbose: true, Output: os.Stderr}
			}
			if err := (apt.Backend{}).Bootstrap(t.Context(), root, spec, env); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(root, "usr/share/vz-tool/data")); err != nil {
				t.Errorf("vz-tool not unpacked: %v", err)
			}
			_, err := os.Stat(filepath.Join(root, "usr/share/vz-extra/data"))
			if got := err == nil; got != weak {
				t.Errorf("vz-extra, recommended by vz-tool, unpacked: %v, want %v", got, weak)
			}
		})
	}
}
