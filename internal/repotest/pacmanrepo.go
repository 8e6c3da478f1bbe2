package repotest

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// PacmanPkg describes a package for BuildPacmanRepo.
type PacmanPkg struct {
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

// PacmanSigner signs pacman packages with a key generated for the purpose.
type PacmanSigner struct {
	gpg func(args ...string) []byte
	// Key is the ASCII-armoured public key.
	Key []byte
}

// NewPacmanSigner generates a signing key (ed25519).
func NewPacmanSigner(t testing.TB) *PacmanSigner {
	t.Helper()
	_, gpg := gpgHome(t)
	gpg("--quick-gen-key", "vztest pacman <vztest@example.invalid>", "ed25519", "sign", "never")
	return &PacmanSigner{gpg: gpg, Key: gpg("--armor", "--export")}
}

// BuildPacmanRepo builds pkgs with makepkg (as nobody: makepkg refuses
// root), signs them with s unless it is nil, and adds them to the
// repository dir/repo.db with repo-add, which puts the signatures in the
// database. Adding a newer version of a package replaces the older one in
// the database. It requires pacman-package-manager (makepkg, repo-add),
// libarchive-tools and gnupg.
func BuildPacmanRepo(t testing.TB, dir, repo string, pkgs []PacmanPkg, s *PacmanSigner) {
	t.Helper()
	mkdirAll(t, dir)
	var files []string
	for _, p := range pkgs {
		f := makepkg(t, dir, p)
		if s != nil {
			s.gpg("--detach-sign", "--no-armor", f)
		}
		files = append(files, f)
	}
	command(t, "", nil, nil, "repo-add", append([]string{"--quiet", filepath.Join(dir, repo+".db.tar.gz")}, files...)...)
}

// makepkg builds p in a directory of its own and moves the package into
// dest, returning its path.
func makepkg(t testing.TB, dest string, p PacmanPkg) string {
	t.Helper()
	build, err := os.MkdirTemp("", "repotest-makepkg-")
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
		writeFile(t, filepath.Join(build, "post.install"), []byte("post_install() {\n"+p.PostInstall+"\n}\n"), 0o644)
	}
	b.WriteString("package() {\n")
	for _, d := range p.Dirs {
		fmt.Fprintf(&b, "  install -d -m 755 \"$pkgdir\"%s\n", q(d))
	}
	for i, dst := range slices.Sorted(maps.Keys(p.Text)) {
		src := fmt.Sprintf("text%d", i)
		writeFile(t, filepath.Join(build, src), []byte(p.Text[dst]), 0o644)
		fmt.Fprintf(&b, "  install -D -m 644 \"$startdir\"/%s \"$pkgdir\"%s\n", src, q(dst))
	}
	for _, dst := range slices.Sorted(maps.Keys(p.Files)) {
		fmt.Fprintf(&b, "  install -d \"$pkgdir\"%s && cp -p %s \"$pkgdir\"%s\n", q(filepath.Dir(dst)), q(p.Files[dst]), q(dst))
	}
	for _, l := range slices.Sorted(maps.Keys(p.Symlinks)) {
		fmt.Fprintf(&b, "  install -d \"$pkgdir\"%s && ln -s %s \"$pkgdir\"%s\n", q(filepath.Dir(l)), q(p.Symlinks[l]), q(l))
	}
	b.WriteString("}\n")
	writeFile(t, filepath.Join(build, "PKGBUILD"), []byte(b.String()), 0o644)
	command(t, "", nil, nil, "chown", "-R", "nobody:nogroup", build)
	command(t, build, []string{"HOME=" + build, "PKGDEST=" + build, "PKGEXT=.pkg.tar.zst", "SOURCE_DATE_EPOCH=1700000000"},
		nil, "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "makepkg", "--nodeps", "--noconfirm", "--force")
	name := fmt.Sprintf("%s-%s-%s.pkg.tar.zst", p.Name, p.Version, arch)
	dst := filepath.Join(dest, name)
	if err := os.Rename(filepath.Join(build, name), dst); err != nil {
		t.Fatalf("makepkg %s: %v", p.Name, err)
	}
	return dst
}

// SystemPacmanPkgs returns, as SystemRPMs does for rpm, a small
// distribution of the host's own binaries: vz-filesystem (the directory
// tree, usr-merged, and /etc/os-release), vz-libc (dash's libraries),
// vz-dash (providing sh), vz-motd (motdVersion; /etc/motd, a post_install
// scriptlet writing /etc/vz-motd.post, and a dependency on kernel-core,
// which only a dummy provides), and vz-extra, which nothing needs.
func SystemPacmanPkgs(t testing.TB, motdVersion string) []PacmanPkg {
	t.Helper()
	arch := strings.TrimSpace(string(command(t, "", nil, nil, "uname", "-m")))
	files, links := HostProgram(t, "/usr/bin/dash")
	libc := PacmanPkg{Name: "vz-libc", Version: "2.36-1", Arch: arch, Depends: []string{"vz-filesystem"},
		Files: map[string]string{}, Symlinks: map[string]string{}}
	dash := PacmanPkg{Name: "vz-dash", Version: "0.5.12-1", Arch: arch, Depends: []string{"vz-libc"}, Provides: []string{"sh"},
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
	return []PacmanPkg{
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

// PacmanTree writes a template tree holding vztest/1/ARCH (ARCH the
// host's), a `packager: script:pacman` template of SystemPacmanPkgs'
// vz-filesystem, vz-dash and vz-motd with a kernel dummy, from the
// repository at repoURL (its key at repoURL/vztest.asc), built with
// use_cacher; its _packagers is a link to scripts, the directory of the
// pacman scripts. It returns the tree and the template's name.
func PacmanTree(t testing.TB, repoURL, scripts string) (tree, name string) {
	t.Helper()
	arch := strings.TrimSpace(string(command(t, "", nil, nil, "uname", "-m")))
	tree = t.TempDir()
	abs, err := filepath.Abs(scripts)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(abs, filepath.Join(tree, "_packagers")); err != nil {
		t.Fatal(err)
	}
	mkdirAll(t, filepath.Join(tree, "vztest", "1", arch))
	writeFile(t, filepath.Join(tree, "vztest", "1", arch, "config.yaml"), nil, 0o644)
	writeFile(t, filepath.Join(tree, "vztest", "config.yaml"), []byte(`packager: script:pacman
use_cacher: true
fixups: [logs-truncate]
keys: ['`+repoURL+`/vztest.asc']
repos:
  vztest:
    mirrors: ['`+repoURL+`/']
sets:
  default:
    packages: [vz-filesystem, vz-dash, vz-motd]
    dummies:
      - {name: kernel, version: "99:1.0-1", provides: [kernel-core]}
`), 0o644)
	return tree, "vztest-1-" + arch
}
