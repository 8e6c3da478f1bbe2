package dnf_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vzpkg2/internal/packager"
	"vzpkg2/internal/packager/dnf"
	"vzpkg2/internal/packager/packagertest"
	"vzpkg2/internal/repotest"
)

// TestConformance runs the packager suite on dnf with a signed local
// repository of the host's own binaries, served on loopback. (Needs root,
// dnf, rpm, createrepo-c and gnupg.)
func TestConformance(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	signer := repotest.NewRPMSigner(t)
	repo := repotest.BuildSignedRPMRepo(t, filepath.Join(dir, "1"), repotest.SystemRPMs(t, "1.0"), signer)
	up := repotest.NewUpstream(t, dir)
	spec := &packager.Spec{
		Name: "vztest-1-x86_64", Arch: hostArch(t), Releasever: "1",
		Repos:    []packager.Repo{{Name: "vztest-base", Mirrors: []string{up.URL() + "/1/"}}},
		Keys:     []string{up.URL() + "/1/" + filepath.Base(repo.Key)},
		Packages: []string{"vz-filesystem", "vz-dash", "vz-motd"},
		Dummies:  []packager.Dummy{{Name: "kernel", Version: "99:1.0-vz1", Provides: []string{"kernel-core"}}},
	}
	packagertest.Run(t, packagertest.Fixture{
		Packager: dnf.Dnf{},
		Env:      testEnv(),
		Spec:     spec,
		Extra:    "vz-extra",
		Upgraded: "vz-motd", UpgradedVersion: "1.1-1",
		Publish: func(t *testing.T) {
			rpms := repotest.SystemRPMs(t, "1.1")
			repotest.BuildSignedRPMRepo(t, filepath.Join(dir, "1"), rpms[3:4], signer)
		},
		RepoDir: "etc/yum.repos.d",
	})
}

func hostArch(t *testing.T) string {
	out, err := exec.Command("uname", "-m").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// testEnv shows dnf's output with go test -v.
func testEnv() packager.Env {
	if testing.Verbose() {
		return packager.Env{Verbose: true, Output: os.Stderr}
	}
	return packager.Env{}
}
