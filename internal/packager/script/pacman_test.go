package script_test

import (
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"vzpkg2/internal/packager"
	"vzpkg2/internal/packager/packagertest"
	"vzpkg2/internal/packager/script"
	"vzpkg2/internal/repotest"
)

// bin holds the project's binaries (pkg-cacher) built for the tests.
var bin string

func TestMain(m *testing.M) { repotest.RunWithBinaries(m, &bin) }

// shippedScripts is the shipped template tree's _packagers directory.
var shippedScripts = filepath.Join("..", "..", "..", "templates", "_packagers")

// TestPacmanConformance runs the packager suite on the shipped pacman
// example: a signed pacman repository of the host's own binaries built by
// makepkg and repo-add, served on loopback and fetched through a real
// pkg-cacher. (Needs root, pacman-package-manager, makepkg,
// libarchive-tools and gnupg.)
func TestPacmanConformance(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	signer := repotest.NewPacmanSigner(t)
	repotest.BuildPacmanRepo(t, dir, "vztest", repotest.SystemPacmanPkgs(t, "1.0"), signer)
	writeTestFile(t, filepath.Join(dir, "vztest.asc"), string(signer.Key), 0o644)
	up := repotest.NewUpstream(t, dir)
	c := repotest.StartCacher(t, bin, "allowed_locations="+up.HostPort(), "volatile_ttl=0")
	cacher := mustURL(t, c.URL)

	p, err := script.New("pacman", []string{shippedScripts})
	if err != nil {
		t.Fatal(err)
	}
	env := packager.Env{Cacher: cacher}
	if testing.Verbose() {
		env.Verbose, env.Output = true, os.Stderr
	}
	spec := &packager.Spec{
		Name: "vztest-1-" + hostArch(t), Arch: hostArch(t),
		Repos:    []packager.Repo{{Name: "vztest", Mirrors: []string{up.URL() + "/"}}},
		Keys:     []string{up.URL() + "/vztest.asc"},
		Packages: []string{"vz-filesystem", "vz-dash", "vz-motd"},
		Dummies:  []packager.Dummy{{Name: "kernel", Version: "99:1.0-1", Provides: []string{"kernel-core"}}},
	}
	packagertest.Run(t, packagertest.Fixture{
		Packager: p,
		Spec:     spec,
		Env:      env,
		Extra:    "vz-extra",
		Upgraded: "vz-motd", UpgradedVersion: "1.1-1",
		Publish: func(t *testing.T) {
			pkgs := repotest.SystemPacmanPkgs(t, "1.1")
			repotest.BuildPacmanRepo(t, dir, "vztest", pkgs[3:4], signer)
		},
		RepoDir:  "etc/pacman.d/repos",
		Volatile: []string{"var/lib/pacman/sync"},
	})
	if n := c.Misses(t, func(u string) bool { return strings.HasSuffix(u, ".pkg.tar.zst") }); n == 0 {
		t.Error("pkg-cacher fetched no package: the backend did not go through it")
	}

	// bootstrapped is a new root of spec's set and its dummy.
	bootstrapped := func(t *testing.T) string {
		t.Helper()
		root := t.TempDir()
		dummy, err := p.Dummy(t.Context(), t.TempDir(), spec, spec.Dummies[0])
		if err != nil {
			t.Fatal(err)
		}
		env := env
		env.Dummies = []string{dummy}
		if err := p.Bootstrap(t.Context(), root, spec, env); err != nil {
			t.Fatal(err)
		}
		return root
	}

	t.Run("a bootstrapped root runs its shell and scriptlets", func(t *testing.T) {
		root := bootstrapped(t)
		if got, want := readTestFile(t, filepath.Join(root, "etc", "vz-motd.post")), "post_install of 1.1-1 ran\n"; got != want {
			t.Errorf("vz-motd's post_install wrote %q, want %q", got, want)
		}
		out, err := exec.Command("chroot", root, "/bin/sh", "-c", `read -r l </etc/motd; echo "$l"`).CombinedOutput()
		if err != nil || string(out) != "vz-motd 1.1\n" {
			t.Errorf("sh in a chroot of the root: %q, %v", out, err)
		}
	})

	t.Run("an unsigned package is refused", func(t *testing.T) {
		root := bootstrapped(t)
		before, err := p.Query(t.Context(), root)
		if err != nil {
			t.Fatal(err)
		}
		repotest.BuildPacmanRepo(t, dir, "vztest", []repotest.PacmanPkg{{Name: "vz-unsigned", Version: "1.0-1", Text: map[string]string{"/etc/unsigned": "x\n"}}}, nil)
		if err := p.Install(t.Context(), root, spec, env, []string{"vz-unsigned"}); err == nil {
			t.Error("Install of a package without a signature succeeded")
		}
		if after, err := p.Query(t.Context(), root); err != nil || !slices.Equal(before, after) {
			t.Errorf("the refused Install changed the packages: %v, %v", after, err)
		}
		if _, err := os.Lstat(filepath.Join(root, "etc", "unsigned")); err == nil {
			t.Error("the unsigned package's file is in the root")
		}
	})

	t.Run("vzpkg create cache of a script:pacman template", func(t *testing.T) {
		tree, name := repotest.PacmanTree(t, up.URL(), shippedScripts)
		build := func(t *testing.T) string {
			cache := t.TempDir()
			cmd := exec.Command(filepath.Join(bin, "vzpkg"), "--templates", tree, "create", "cache", name, "--cache-dir", cache, "--cacher", c.URL, "--quiet")
			cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("vzpkg create cache: %v\n%s", err, out)
			}
			return cache
		}
		cache := build(t)
		manifest := readTestFile(t, filepath.Join(cache, name+".manifest"))
		for _, want := range []string{"kernel 99:1.0-1 any\n", "vz-dash 0.5.12-1 " + hostArch(t) + "\n", "vz-motd 1.1-1 any\n"} {
			if !strings.Contains(manifest, want) {
				t.Errorf("the manifest lacks %q:\n%s", want, manifest)
			}
		}
		root := t.TempDir()
		run(t, "", nil, "tar", "-xpf", filepath.Join(cache, name+".tar.gz"), "-C", root, "--numeric-owner")
		repos := filepath.Join(root, "etc", "pacman.d", "repos")
		if got, want := readTestFile(t, filepath.Join(repos, "vztest.conf")), "Server = "+c.URL+up.HostPort()+"/\n"; !strings.Contains(got, want) {
			t.Errorf("the template's vztest.conf:\n%s\nwant it through pkg-cacher: %q", got, want)
		}
		if got, want := readTestFile(t, filepath.Join(repos, "vztest.conf.disabled")), "Server = "+up.URL()+"/\n"; !strings.Contains(got, want) {
			t.Errorf("the template's vztest.conf.disabled:\n%s\nwant the original, %q", got, want)
		}
		if left, _ := filepath.Glob(filepath.Join(root, "var", "cache", "pacman", "pkg", "*")); len(left) > 0 {
			t.Errorf("the template keeps downloaded packages: %v", left)
		}
		if _, err := os.Lstat(filepath.Join(root, "etc", "pacman.d", "gnupg")); err == nil {
			t.Error("the template holds a pacman keyring (with the build's private master key)")
		}

		// The same input and SOURCE_DATE_EPOCH: the same bytes, and every
		// package from pkg-cacher's cache.
		before := up.CountContains(".pkg.tar.")
		again := build(t)
		if n := up.CountContains(".pkg.tar.") - before; n != 0 {
			t.Errorf("the second build made %d upstream package requests, want 0: pkg-cacher did not keep the packages", n)
		}
		a := readTestFile(t, filepath.Join(cache, name+".tar.gz"))
		if b := readTestFile(t, filepath.Join(again, name+".tar.gz")); a != b {
			t.Errorf("two builds with the same SOURCE_DATE_EPOCH differ (%d and %d bytes)", len(a), len(b))
		}
	})
}

// TestPacmanRefusesWithoutKeys: a template that names no signing keys is
// refused before anything is fetched, as apt and dnf refuse unsigned
// repositories: the example never installs what it cannot verify.
func TestPacmanRefusesWithoutKeys(t *testing.T) {
	p, err := script.New("pacman", []string{shippedScripts})
	if err != nil {
		t.Fatal(err)
	}
	spec := &packager.Spec{
		Name: "vztest-1-" + hostArch(t), Arch: hostArch(t),
		Repos:    []packager.Repo{{Name: "vztest", Mirrors: []string{"http://127.0.0.1:1/"}}},
		Packages: []string{"vz-filesystem"},
	}
	root := t.TempDir()
	err = p.Bootstrap(t.Context(), root, spec, packager.Env{})
	if err == nil || !strings.Contains(err.Error(), "no signing keys") {
		t.Errorf("Bootstrap without keys: %v, want a refusal naming the missing keys", err)
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/pacman/local")); err == nil {
		t.Errorf("Bootstrap without keys left a package database in the root")
	}
}

func hostArch(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("uname", "-m").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// run runs a command in dir with a clean environment plus env, failing
// the test with its output when it fails.
func run(t *testing.T, dir string, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8"}, env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func writeTestFile(t *testing.T, name, data string, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
