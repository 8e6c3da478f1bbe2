package script_test

import (
	"fmt"
	"maps"
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
	signer := newPacmanSigner(t)
	buildPacmanRepo(t, dir, "vztest", systemPacmanPkgs(t, "1.0"), signer)
	writeTestFile(t, filepath.Join(dir, "vztest.asc"), string(signer.key), 0o644)
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
			pkgs := systemPacmanPkgs(t, "1.1")
			buildPacmanRepo(t, dir, "vztest", pkgs[3:4], signer)
		},
		RepoDir:  "etc/pacman.d/repos",
		Volatile: []string{"var/lib/pacman/sync"},
	})
	if n := c.Misses(t, func(u string) bool { return strings.HasSuffix(u, ".pkg.tar.zst") }); n == 0 {
		t.Error("pkg-cacher fetched no package: the backend did not go through it")
	}

	t.Run("a bootstrapped root runs its shell and scriptlets", func(t *testing.T) {
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
		if got, want := readTestFile(t, filepath.Join(root, "etc", "vz-motd.post")), "post_install of 1.1-1 ran\n"; got != want {
			t.Errorf("vz-motd's post_install wrote %q, want %q", got, want)
		}
		out, err := exec.Command("chroot", root, "/bin/sh", "-c", `read -r l </etc/motd; echo "$l"`).CombinedOutput()
		if err != nil || string(out) != "vz-motd 1.1\n" {
			t.Errorf("sh in a chroot of the root: %q, %v", out, err)
		}
	})

	t.Run("an unsigned package is refused", func(t *testing.T) {
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
		before, err := p.Query(t.Context(), root)
		if err != nil {
			t.Fatal(err)
		}
		buildPacmanRepo(t, dir, "vztest", []pacmanPkg{{Name: "vz-unsigned", Version: "1.0-1", Text: map[string]string{"/etc/unsigned": "x\n"}}}, nil)
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
		tree := t.TempDir()
		abs, err := filepath.Abs(shippedScripts)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(abs, filepath.Join(tree, "_packagers")); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(tree, "vztest", "1", hostArch(t)), 0o755); err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, filepath.Join(tree, "vztest", "1", hostArch(t), "config.yaml"), "", 0o644)
		writeTestFile(t, filepath.Join(tree, "vztest", "config.yaml"), `packager: script:pacman
use_cacher: true
fixups: [logs-truncate]
keys: ['`+up.URL()+`/vztest.asc']
repos:
  vztest:
    mirrors: ['`+up.URL()+`/']
sets:
  default:
    packages: [vz-filesystem, vz-dash, vz-motd]
    dummies:
      - {name: kernel, version: "99:1.0-1", provides: [kernel-core]}
`, 0o644)
		name := "vztest-1-" + hostArch(t)
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

		// The same input and SOURCE_DATE_EPOCH: the same bytes.
		before := len(up.Requests())
		again := build(t)
		t.Logf("the second build made %d upstream requests", len(up.Requests())-before)
		a := readTestFile(t, filepath.Join(cache, name+".tar.gz"))
		if b := readTestFile(t, filepath.Join(again, name+".tar.gz")); a != b {
			t.Errorf("two builds with the same SOURCE_DATE_EPOCH differ (%d and %d bytes)", len(a), len(b))
		}
	})
}

// pacmanPkg describes a package for buildPacmanRepo.
type pacmanPkg struct {
	Name, Version string // Version is pkgver-pkgrel, e.g. "1.0-1"
	Arch          string // "any" when empty
	Depends       []string
	Provides      []string
	Files         map[string]string // installed path → the host file copied there
	Text          map[string]string // installed path → content
	Dirs          []string
	Symlinks      map[string]string // installed path → link target
	PostInstall   string            // body of the install script's post_install
}

// buildPacmanRepo builds pkgs with makepkg (as nobody: makepkg refuses
// root), signs them with signer unless it is nil, and adds them to the
// repository dir/repo.db with repo-add, which puts the signatures in the
// database. Adding a newer version of a package replaces the older one in
// the database.
func buildPacmanRepo(t *testing.T, dir, repo string, pkgs []pacmanPkg, signer *pacmanSigner) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, p := range pkgs {
		f := makepkg(t, dir, p)
		if signer != nil {
			signer.gpg(t, "--detach-sign", "--no-armor", f)
		}
		files = append(files, f)
	}
	run(t, "", nil, "repo-add", append([]string{"--quiet", filepath.Join(dir, repo+".db.tar.gz")}, files...)...)
}

// pacmanSigner is a GnuPG home with a signing key made for the test.
type pacmanSigner struct {
	home string
	key  []byte // the public key, ASCII-armoured
}

func newPacmanSigner(t *testing.T) *pacmanSigner {
	t.Helper()
	// gpg-agent's socket path must stay short: not under t.TempDir.
	home, err := os.MkdirTemp("", "vzgpg")
	if err != nil {
		t.Fatal(err)
	}
	s := &pacmanSigner{home: home}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run()
		os.RemoveAll(home)
	})
	s.gpg(t, "--quick-gen-key", "vztest pacman <vztest@example.invalid>", "ed25519", "sign", "never")
	s.key = s.gpg(t, "--armor", "--export")
	return s
}

// gpg runs gpg in the signer's home and returns its output.
func (s *pacmanSigner) gpg(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("gpg", append([]string{"--homedir", s.home, "--batch", "--no-tty", "--yes", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gpg %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// makepkg builds p in a directory of its own and moves the package into
// dest, returning its path.
func makepkg(t *testing.T, dest string, p pacmanPkg) string {
	t.Helper()
	build, err := os.MkdirTemp("", "vzpkg-makepkg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(build) })
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	list := func(l []string) string {
		var out []string
		for _, s := range l {
			out = append(out, q(s))
		}
		return "(" + strings.Join(out, " ") + ")"
	}
	pkgver, pkgrel, _ := strings.Cut(p.Version, "-")
	arch := p.Arch
	if arch == "" {
		arch = "any"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "pkgname=%s\npkgver=%s\npkgrel=%s\npkgdesc='vzpkg test package'\narch=(%s)\nlicense=(MIT)\n", p.Name, pkgver, pkgrel, arch)
	fmt.Fprintf(&b, "depends=%s\nprovides=%s\noptions=(!strip !debug !lto !zipman !purge !docs)\n", list(p.Depends), list(p.Provides))
	if p.PostInstall != "" {
		b.WriteString("install=post.install\n")
		writeTestFile(t, filepath.Join(build, "post.install"), "post_install() {\n"+p.PostInstall+"\n}\n", 0o644)
	}
	b.WriteString("package() {\n")
	for _, d := range p.Dirs {
		fmt.Fprintf(&b, "  install -d -m 755 \"$pkgdir\"%s\n", q(d))
	}
	for i, dst := range slices.Sorted(maps.Keys(p.Text)) {
		src := fmt.Sprintf("text%d", i)
		writeTestFile(t, filepath.Join(build, src), p.Text[dst], 0o644)
		fmt.Fprintf(&b, "  install -D -m 644 \"$startdir\"/%s \"$pkgdir\"%s\n", src, q(dst))
	}
	for _, dst := range slices.Sorted(maps.Keys(p.Files)) {
		fmt.Fprintf(&b, "  install -d \"$pkgdir\"%s && cp -p %s \"$pkgdir\"%s\n", q(filepath.Dir(dst)), q(p.Files[dst]), q(dst))
	}
	for _, l := range slices.Sorted(maps.Keys(p.Symlinks)) {
		fmt.Fprintf(&b, "  install -d \"$pkgdir\"%s && ln -s %s \"$pkgdir\"%s\n", q(filepath.Dir(l)), q(p.Symlinks[l]), q(l))
	}
	b.WriteString("}\n")
	writeTestFile(t, filepath.Join(build, "PKGBUILD"), b.String(), 0o644)
	run(t, "", nil, "chown", "-R", "nobody:nogroup", build)
	run(t, build, []string{"HOME=" + build, "PKGDEST=" + build, "PKGEXT=.pkg.tar.zst", "SOURCE_DATE_EPOCH=1700000000"},
		"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "makepkg", "--nodeps", "--noconfirm", "--force")
	name := fmt.Sprintf("%s-%s-%s.pkg.tar.zst", p.Name, p.Version, arch)
	dst := filepath.Join(dest, name)
	if err := os.Rename(filepath.Join(build, name), dst); err != nil {
		t.Fatalf("makepkg %s: %v", p.Name, err)
	}
	return dst
}

// systemPacmanPkgs returns a small distribution of the host's own
// binaries, as repotest.SystemRPMs does for rpm: vz-filesystem (the
// directory tree, usr-merged), vz-libc (dash's libraries), vz-dash
// (providing sh), vz-motd (motdVersion; /etc/motd, a post_install
// scriptlet, and a dependency on kernel-core, which only a dummy
// provides), and vz-extra, which nothing needs.
func systemPacmanPkgs(t *testing.T, motdVersion string) []pacmanPkg {
	t.Helper()
	arch := hostArch(t)
	files, links := repotest.HostProgram(t, "/usr/bin/dash")
	libc := pacmanPkg{Name: "vz-libc", Version: "2.36-1", Arch: arch, Depends: []string{"vz-filesystem"},
		Files: map[string]string{}, Symlinks: map[string]string{}}
	dash := pacmanPkg{Name: "vz-dash", Version: "0.5.12-1", Arch: arch, Depends: []string{"vz-libc"}, Provides: []string{"sh"},
		Files: map[string]string{}, Symlinks: map[string]string{"/usr/bin/sh": "dash"}}
	for dst, src := range files {
		if strings.HasSuffix(dst, "/dash") {
			dash.Files["/usr/bin/dash"] = src
		} else {
			libc.Files[dst] = src
		}
	}
	for l, target := range links {
		if !strings.HasSuffix(l, "/dash") {
			libc.Symlinks[l] = target
		}
	}
	return []pacmanPkg{
		{Name: "vz-filesystem", Version: "1.0-1",
			Dirs: []string{"/dev", "/etc", "/proc", "/root", "/sys", "/tmp", "/usr/bin", "/usr/lib", "/usr/lib64", "/usr/sbin",
				"/usr/share", "/var/cache", "/var/lib", "/var/log", "/var/tmp"},
			Symlinks: map[string]string{"/bin": "usr/bin", "/sbin": "usr/sbin", "/lib": "usr/lib", "/lib64": "usr/lib64"},
			Text:     map[string]string{"/etc/os-release": "NAME=\"vz test\"\nID=vztest\nVERSION_ID=1\n"}},
		libc,
		dash,
		{Name: "vz-motd", Version: motdVersion + "-1", Depends: []string{"vz-filesystem", "sh", "kernel-core"},
			Text:        map[string]string{"/etc/motd": "vz-motd " + motdVersion + "\n"},
			PostInstall: `  echo "post_install of $1 ran" > /etc/vz-motd.post`},
		{Name: "vz-extra", Version: "1.0-1", Depends: []string{"vz-filesystem"}, Text: map[string]string{"/usr/share/vz-extra/data": "extra\n"}},
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
