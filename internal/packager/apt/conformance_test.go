package apt_test

import (
	"os"
	"path/filepath"
	"testing"

	"vzpkg2/internal/packager"
	"vzpkg2/internal/packager/apt"
	"vzpkg2/internal/packager/packagertest"
	"vzpkg2/internal/repotest"
)

// TestConformanceNetwork runs the packager suite on apt: Debian 12's apt
// variant from deb.debian.org (the network, and a minute or two), plus a
// signed local repository on loopback with the packages the suite installs
// and upgrades. (Needs root, mmdebstrap, dpkg-dev, apt-utils and gnupg.)
func TestConformanceNetwork(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	debs := []repotest.Deb{
		{Name: "vz-probe", Version: "1.0", Size: 1024},
		{Name: "vz-extra", Version: "1.0", Depends: []string{"vz-probe"}, Size: 1024},
	}
	repo := repotest.BuildAptRepo(t, dir, "vztest", debs)
	up := repotest.NewUpstream(t, dir)
	spec := &packager.Spec{
		Name: "debian-12-x86_64-vztest", Arch: "x86_64", ArchName: "amd64", Suite: "bookworm", Variant: "apt",
		Repos: []packager.Repo{
			{Name: "debian", Mirrors: []string{"http://deb.debian.org/debian"}, Suites: []string{"bookworm"}, Components: []string{"main"}},
			{Name: "vztest", Mirrors: []string{up.URL() + "/"}, Suites: []string{"vztest"}, Components: []string{"main"}},
		},
		Keys:     []string{"/usr/share/keyrings/debian-archive-keyring.gpg", repo.Keyring},
		Packages: []string{"vz-probe"},
		Dummies:  []packager.Dummy{{Name: "udev", Version: "99:1.0-vz1"}},
	}
	env := packager.Env{}
	if testing.Verbose() {
		env = packager.Env{Verbose: true, Output: os.Stderr}
	}
	packagertest.Run(t, packagertest.Fixture{
		Packager: apt.Backend{},
		Spec:     spec,
		Env:      env,
		Extra:    "vz-extra",
		Upgraded: "vz-probe", UpgradedVersion: "2.0",
		Publish: func(t *testing.T) {
			// A new signing key too, written over repo.Keyring, which the
			// backend copies into the root on each run.
			os.RemoveAll(filepath.Join(dir, "dists"))
			repotest.BuildAptRepo(t, dir, "vztest", append(debs, repotest.Deb{Name: "vz-probe", Version: "2.0", Size: 1024}))
		},
		RepoDir:  "etc/apt",
		Volatile: []string{"var/lib/apt/lists", "var/cache/apt"},
	})
}
