package container_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vzpkg2/internal/repotest"
)

// TestPacmanContainer manages a container of a `packager: script:pacman`
// template with the shipped pacman scripts: pacman-repos reads the
// container's own configuration, and install, remove, check-updates and
// update go through pkg-cacher with the template's keys. (Needs root,
// pacman-package-manager, makepkg, libarchive-tools and gnupg.)
func TestPacmanContainer(t *testing.T) {
	if _, err := exec.LookPath("pacman"); err != nil {
		t.Fatal("pacman is not installed (scripts/setup.sh installs pacman-package-manager)")
	}
	repoDir := filepath.Join(t.TempDir(), "repo")
	signer := repotest.NewPacmanSigner(t)
	repotest.BuildPacmanRepo(t, repoDir, "vztest", repotest.SystemPacmanPkgs(t, "1.0"), signer)
	if err := os.WriteFile(filepath.Join(repoDir, "vztest.asc"), signer.Key, 0o644); err != nil {
		t.Fatal(err)
	}
	up := repotest.NewUpstream(t, repoDir)
	c := repotest.StartCacher(t, bin, "allowed_locations="+up.HostPort(), "volatile_ttl=0")
	tree, name := repotest.PacmanTree(t, up.URL(), filepath.Join("..", "..", "templates", "_packagers"))
	out := t.TempDir()
	ok(t, "--templates", tree, "create", "cache", name, "--cache-dir", out, "--cacher", c.URL, "--quiet")
	root := filepath.Join(t.TempDir(), "ct")
	extract(t, filepath.Join(out, name+".tar.gz"), root)
	if rec, err := os.ReadFile(filepath.Join(root, "etc/vzpkg/packager")); err != nil || !strings.Contains(string(rec), "\npackager=script:pacman\n") {
		t.Errorf("the template does not record its packager as script:pacman: %q %v", rec, err)
	}
	// The script packager's executables are found in the tree's _packagers.
	vz := func(args ...string) []string { return append([]string{"--templates", tree}, args...) }
	before := packages(t, ok(t, vz("list", root)...))
	if before["vz-motd"] != "1.0-1 any" || before["kernel"] != "99:1.0-1 any" || len(before) != 5 {
		t.Fatalf("list of the pacman container: %v", before)
	}

	t.Run("install, check-updates, remove", func(t *testing.T) {
		if stdout := ok(t, vz("install", root, "vz-extra")...); stdout != "installed vz-extra 1.0-1 any\n" {
			t.Errorf("install printed %q", stdout)
		}
		if n := c.Misses(t, func(u string) bool { return strings.HasSuffix(u, "/vz-extra-1.0-1-any.pkg.tar.zst") }); n != 1 {
			t.Errorf("pkg-cacher fetched vz-extra upstream %d times, want once: install did not go through it", n)
		}
		if _, err := os.Stat(filepath.Join(root, "usr/share/vz-extra/data")); err != nil {
			t.Errorf("vz-extra's file is not in the container: %v", err)
		}
		if pkgs := packages(t, ok(t, vz("list", root)...)); pkgs["vz-extra"] != "1.0-1 any" || len(pkgs) != 6 {
			t.Errorf("list after install: %v", pkgs)
		}
		if r := vzpkg(t, vz("check-updates", root)...); r.code != 0 || r.stdout != "no updates\n" {
			t.Errorf("check-updates: exit %d, printed %q %s; want 0 and \"no updates\"", r.code, r.stdout, r.stderr)
		}
		r := vzpkg(t, vz("install", root, "vz-no-such-package")...)
		if r.code != 1 {
			t.Errorf("install of an unknown package: exit %d, want 1", r.code)
		}
		oneLine(t, r.stderr, "install vz-no-such-package", "no package in the repositories: vz-no-such-package")
		if out := ok(t, vz("remove", root, "vz-extra")...); out != "removed vz-extra\n" {
			t.Errorf("remove printed %q", out)
		}
		if pkgs := packages(t, ok(t, vz("list", root)...)); len(pkgs) != 5 || pkgs["vz-extra"] != "" {
			t.Errorf("list after remove: %v", pkgs)
		}
		if _, err := os.Lstat(filepath.Join(root, "usr/share/vz-extra/data")); err == nil {
			t.Error("vz-extra's file is still in the container after remove")
		}
		if r := vzpkg(t, vz("remove", root, "vz-extra")...); r.code != 1 || !strings.Contains(r.stderr, "not installed: vz-extra") {
			t.Errorf("remove of a package not installed: exit %d, %q; want 1 and \"not installed: vz-extra\"", r.code, r.stderr)
		}
		noMounts(t, root)
	})

	t.Run("the template's keys check what is installed", func(t *testing.T) {
		repotest.BuildPacmanRepo(t, repoDir, "vztest", []repotest.PacmanPkg{{Name: "vz-unsigned", Version: "1.0-1",
			Text: map[string]string{"/etc/unsigned": "x\n"}}}, nil)
		if r := vzpkg(t, vz("install", root, "vz-unsigned")...); r.code != 1 {
			t.Errorf("install of an unsigned package: exit %d, want 1\n%s", r.code, r.stderr)
		}
		if _, err := os.Lstat(filepath.Join(root, "etc/unsigned")); err == nil {
			t.Error("the unsigned package's file is in the container")
		}
	})

	t.Run("update", func(t *testing.T) {
		repotest.BuildPacmanRepo(t, repoDir, "vztest", repotest.SystemPacmanPkgs(t, "1.1")[3:4], signer)
		r := vzpkg(t, vz("check-updates", root)...)
		if r.code != 100 || !strings.Contains(r.stdout, "vz-motd") || !strings.Contains(r.stdout, "1.1-1") {
			t.Errorf("check-updates with vz-motd 1.1 in the repository: exit %d, printed %q %s; want 100 and vz-motd 1.1-1", r.code, r.stdout, r.stderr)
		}
		if out := ok(t, vz("update", root)...); !strings.Contains(out, "vz-motd") {
			t.Errorf("update printed %q, want vz-motd's change", out)
		}
		if motd, _ := os.ReadFile(filepath.Join(root, "etc/motd")); string(motd) != "vz-motd 1.1\n" {
			t.Errorf("/etc/motd is %q after update, want vz-motd 1.1", motd)
		}
		if v := packages(t, ok(t, vz("list", root)...))["vz-motd"]; v != "1.1-1 any" {
			t.Errorf("vz-motd is %q after update, want 1.1-1", v)
		}
		r = vzpkg(t, vz("check-updates", "--all", "--root-dir", filepath.Dir(root))...)
		if got := summary(t, r.stdout)[root]; r.code != 0 || got != "ok no updates" {
			t.Errorf("check-updates --all after update: exit %d, %s: %q; want 0 and \"ok no updates\"\n%s", r.code, root, got, r.stderr)
		}
		noMounts(t, root)
	})
}
