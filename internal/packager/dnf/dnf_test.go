package dnf_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// TestForeignArchNeedsQemu bootstraps an aarch64 root on an x86_64 host
// without qemu-user-static's binfmt handler: vzpkg must say what to install,
// and leave the root empty.
func TestForeignArchNeedsQemu(t *testing.T) {
	if hostArch(t) != "x86_64" {
		t.Skipf("skipped: the host is %s, not x86_64", hostArch(t))
	}
	if _, err := os.Stat("/proc/sys/fs/binfmt_misc/qemu-aarch64"); err == nil {
		t.Skip("skipped: qemu-user-static's aarch64 handler is registered here")
	}
	root := t.TempDir()
	spec := &packager.Spec{Name: "vztest-1-aarch64", Arch: "aarch64", Releasever: "1", Packages: []string{"vz-dash"},
		Repos: []packager.Repo{{Name: "base", Mirrors: []string{"http://127.0.0.1:9/1/"}}}, Keys: []string{"http://127.0.0.1:9/k"}}
	err := dnf.Dnf{}.Bootstrap(t.Context(), root, spec, packager.Env{})
	if err == nil || !strings.Contains(err.Error(), "qemu-user-static") {
		t.Errorf("Bootstrap of aarch64 on x86_64 without qemu: %v, want an error naming qemu-user-static", err)
	}
	if left, _ := os.ReadDir(root); len(left) != 0 {
		t.Errorf("the refused bootstrap left %v in the root", left)
	}
}

// TestWeakDepsAndDocs bootstraps a package that recommends another and
// carries documentation: the recommended package comes only with WeakDeps,
// the documentation stays out only with NoDocs. (Needs root, dnf, rpm,
// createrepo-c and gnupg.)
func TestWeakDepsAndDocs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	fs := repotest.SystemRPMs(t, "1.0")[0]
	rpms := []repotest.RPM{fs,
		{Name: "vz-tool", Version: "1.0", Release: "1", Requires: []string{"vz-filesystem"}, Recommends: []string{"vz-extra"},
			Text: map[string]string{"/etc/vz-tool.conf": "on\n", "/usr/share/doc/vz-tool/README": "read me\n"}},
		{Name: "vz-extra", Version: "1.0", Release: "1", Requires: []string{"vz-filesystem"}, Size: 64},
	}
	repo := repotest.BuildSignedRPMRepo(t, filepath.Join(dir, "1"), rpms, repotest.NewRPMSigner(t))
	up := repotest.NewUpstream(t, dir)
	for _, tt := range []struct {
		weak, nodocs bool
	}{{false, false}, {true, true}} {
		t.Run(fmt.Sprintf("weak_deps=%v,nodocs=%v", tt.weak, tt.nodocs), func(t *testing.T) {
			root := t.TempDir()
			spec := &packager.Spec{
				Name: "vztest-1-x86_64", Arch: hostArch(t), Releasever: "1",
				Repos:    []packager.Repo{{Name: "vztest-base", Mirrors: []string{up.URL() + "/1/"}}},
				Keys:     []string{up.URL() + "/1/" + filepath.Base(repo.Key)},
				Packages: []string{"vz-tool"},
				WeakDeps: tt.weak, NoDocs: tt.nodocs,
			}
			if err := (dnf.Dnf{}).Bootstrap(t.Context(), root, spec, testEnv()); err != nil {
				t.Fatal(err)
			}
			pkgs, err := dnf.Dnf{}.Query(t.Context(), root)
			if err != nil {
				t.Fatal(err)
			}
			extra := slices.ContainsFunc(pkgs, func(p packager.Package) bool { return p.Name == "vz-extra" })
			if extra != tt.weak {
				t.Errorf("vz-extra, recommended by vz-tool, installed: %v, want %v", extra, tt.weak)
			}
			_, err = os.Stat(filepath.Join(root, "usr/share/doc/vz-tool/README"))
			if docs := err == nil; docs == tt.nodocs {
				t.Errorf("vz-tool's README installed: %v, want %v", docs, !tt.nodocs)
			}
			if _, err := os.Stat(filepath.Join(root, "etc/vz-tool.conf")); err != nil {
				t.Errorf("vz-tool's own file: %v", err)
			}
		})
	}
}
