package packaging_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"vzpkg2/internal/packaging"
	"vzpkg2/internal/repotest"
	tree "vzpkg2/templates"
)

// These tests build the real packages from this checkout (src) and the
// programs built for the tests, and read them with dpkg-deb and rpm.

const src = "../.."

var bin string // directory holding the vzpkg and pkg-cacher binaries built for the tests

func TestMain(m *testing.M) { repotest.RunWithBinaries(m, &bin) }

// build builds the package for target into a temporary directory and
// returns its path. The version is the checkout's, with suffix.
func build(t *testing.T, target packaging.Target, suffix string) string {
	t.Helper()
	ctx := context.Background()
	version, err := packaging.Version(ctx, src)
	if err != nil {
		t.Logf("building version 0.0.0: %v", err)
		version = "0.0.0"
	}
	mtime, err := packaging.SourceDate(ctx, src)
	if err != nil {
		t.Logf("files dated 1970: %v", err)
		mtime = time.Unix(0, 0)
	}
	files, err := packaging.Layout(src, bin, "/usr", target)
	if err != nil {
		t.Fatal(err)
	}
	m := packaging.Meta{Version: version + suffix, Arch: "amd64", MTime: mtime, Scripts: filepath.Join(src, "internal/packaging/scripts")}
	name, err := packaging.Build(target, files, m, filepath.Join(t.TempDir(), "stage"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return name
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// shipped lists the files a system must get from the checkout, by where
// they go on a Debian system (zshDir: where zsh completions go): the
// programs, a gzipped page for every page in docs/man, every completion,
// every file of the template tree, the units and the configuration.
func shipped(t *testing.T, zshDir string) []string {
	t.Helper()
	want := []string{"/usr/bin/vzpkg", "/usr/bin/pkg-cacher",
		"/usr/lib/systemd/system/pkg-cacher.service", "/usr/lib/systemd/system/vzpkg-update-cache.service",
		"/usr/lib/systemd/system/vzpkg-update-cache.timer", "/usr/share/vzpkg/avahi/pkg-cacher.service",
		"/etc/pkg-cacher/pkg-cacher.conf", "/etc/vzpkg/vzpkg.conf", "/etc/logrotate.d/pkg-cacher"}
	pages, _ := filepath.Glob(filepath.Join(src, "docs/man/*.[1-9]"))
	if len(pages) < 20 {
		t.Fatalf("docs/man has %d pages", len(pages))
	}
	for _, p := range pages {
		n := filepath.Base(p)
		want = append(want, "/usr/share/man/man"+n[len(n)-1:]+"/"+n+".gz")
	}
	for shell, dir := range map[string]string{"bash": "/usr/share/bash-completion/completions", "zsh": zshDir, "fish": "/usr/share/fish/vendor_completions.d"} {
		files, _ := filepath.Glob(filepath.Join(src, "etc/completions", shell, "*"))
		for _, f := range files {
			want = append(want, dir+"/"+filepath.Base(f))
		}
	}
	n := 0
	filepath.WalkDir(filepath.Join(src, "templates"), func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(filepath.Join(src, "templates"), p)
		if err == nil && !d.IsDir() && !tree.IsSource(filepath.ToSlash(rel)) {
			want = append(want, "/usr/share/vzpkg/templates/"+filepath.ToSlash(rel))
			n++
		}
		return err
	})
	if n < 40 {
		t.Fatalf("the template tree has %d files", n)
	}
	slices.Sort(want)
	return want
}

// missing returns the paths of want not in got.
func missing(want, got []string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(got, w) {
			out = append(out, w)
		}
	}
	return out
}

func TestDebContents(t *testing.T) {
	deb := build(t, packaging.Deb, "")
	if !strings.HasPrefix(filepath.Base(deb), "vzpkg2_") || !strings.HasSuffix(deb, "-1_amd64.deb") {
		t.Errorf("the package is named %s", filepath.Base(deb))
	}
	// dpkg-deb -c: "-rwxr-xr-x root/root 123 2026-01-01 00:00 ./usr/bin/vzpkg"
	var files []string
	modes := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(run(t, "dpkg-deb", "-c", deb)), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 {
			t.Fatalf("dpkg-deb -c line %q", l)
		}
		if f[1] != "root/root" {
			t.Errorf("%s is owned by %s, want root/root", f[5], f[1])
		}
		p := strings.TrimPrefix(f[5], ".")
		if !strings.HasSuffix(p, "/") {
			files = append(files, p)
			modes[p] = f[0]
		}
	}
	want := shipped(t, "/usr/share/zsh/vendor-completions")
	if m := missing(want, files); len(m) > 0 {
		t.Errorf("the .deb lacks %v", m)
	}
	if extra := missing(files, want); len(extra) > 0 {
		t.Errorf("the .deb has files nothing ships: %v", extra)
	}
	executables := []string{"/usr/bin/vzpkg", "/usr/bin/pkg-cacher"}
	filepath.WalkDir(filepath.Join(src, "templates"), func(p string, d fs.DirEntry, err error) error {
		if fi, _ := d.Info(); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o100 != 0 { // hooks
			rel, _ := filepath.Rel(filepath.Join(src, "templates"), p)
			executables = append(executables, "/usr/share/vzpkg/templates/"+filepath.ToSlash(rel))
		}
		return err
	})
	for _, p := range executables {
		if modes[p] != "-rwxr-xr-x" {
			t.Errorf("%s has mode %s, want -rwxr-xr-x", p, modes[p])
		}
	}
	if modes["/etc/vzpkg/vzpkg.conf"] != "-rw-r--r--" {
		t.Errorf("vzpkg.conf has mode %s", modes["/etc/vzpkg/vzpkg.conf"])
	}

	ctl := t.TempDir()
	run(t, "dpkg-deb", "-e", deb, ctl)
	conffiles, _ := os.ReadFile(filepath.Join(ctl, "conffiles"))
	if got := strings.Fields(string(conffiles)); !slices.Equal(got, []string{"/etc/logrotate.d/pkg-cacher", "/etc/pkg-cacher/pkg-cacher.conf", "/etc/vzpkg/vzpkg.conf"}) {
		t.Errorf("conffiles: %q", got)
	}
	control, _ := os.ReadFile(filepath.Join(ctl, "control"))
	for _, field := range []string{"Depends:", "Pre-Depends:", "Recommends:"} {
		if strings.Contains(string(control), "\n"+field) {
			t.Errorf("the .deb has %s (apt install ./vzpkg2_*.deb must need nothing):\n%s", field, control)
		}
	}

	// A man page is the page of docs/man, gzipped.
	x := t.TempDir()
	run(t, "dpkg-deb", "-x", deb, x)
	gz, err := os.ReadFile(filepath.Join(x, "usr/share/man/man8/vzpkg.8.gz"))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(zr)
	if orig, _ := os.ReadFile(filepath.Join(src, "docs/man/vzpkg.8")); !bytes.Equal(page, orig) {
		t.Errorf("vzpkg.8.gz unpacks to %d bytes, not docs/man/vzpkg.8's %d", len(page), len(orig))
	}
}

func TestPackagesAreReproducible(t *testing.T) {
	for _, target := range []packaging.Target{packaging.Deb, packaging.RPM} {
		t.Run(string(target), func(t *testing.T) {
			a, b := build(t, target, ""), build(t, target, "")
			da, _ := os.ReadFile(a)
			db, _ := os.ReadFile(b)
			if sha256.Sum256(da) != sha256.Sum256(db) {
				t.Errorf("two builds of the same checkout differ: %d and %d bytes", len(da), len(db))
			}
		})
	}
}

func TestRPMInstallsIntoRoot(t *testing.T) {
	rpmFile := build(t, packaging.RPM, "")
	root := t.TempDir()
	// The scriptlets need a shell and useradd inside the root; they are
	// run by the .deb's test in a container (TestDebInLXCContainer).
	run(t, "rpm", "--root", root, "--nodeps", "--noscripts", "-i", rpmFile)
	got := strings.Fields(run(t, "rpm", "--root", root, "-ql", packaging.Name))
	want := shipped(t, "/usr/share/zsh/site-functions")
	if m := missing(want, got); len(m) > 0 {
		t.Errorf("rpm -ql lacks %v", m)
	}
	for _, p := range want {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("installed: %v", err)
		}
	}
	if got := strings.Fields(run(t, "rpm", "--root", root, "-qc", packaging.Name)); !slices.Equal(got, []string{"/etc/logrotate.d/pkg-cacher", "/etc/pkg-cacher/pkg-cacher.conf", "/etc/vzpkg/vzpkg.conf"}) {
		t.Errorf("rpm -qc: %q", got)
	}
	// %config(noreplace): an administrator's change survives an upgrade.
	if out := run(t, "rpm", "--root", root, "-q", "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]", packaging.Name); !strings.Contains(out, "cn /etc/pkg-cacher/pkg-cacher.conf") {
		t.Errorf("pkg-cacher.conf is not %%config(noreplace):\n%s", out)
	}
	if out, err := exec.Command("rpm", "--root", root, "-V", packaging.Name).CombinedOutput(); err != nil {
		t.Errorf("rpm -V: %v\n%s", err, out)
	}
	run(t, "rpm", "--root", root, "--noscripts", "-e", packaging.Name)
	for _, p := range []string{"/usr/bin/vzpkg", "/usr/share/vzpkg", "/etc/pkg-cacher", "/etc/vzpkg"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			t.Errorf("%s remains after rpm -e", p)
		}
	}
	if out := run(t, "rpm", "-qp", "--scripts", rpmFile); !strings.Contains(out, "useradd --system") || !strings.Contains(out, "preuninstall") {
		t.Errorf("the .rpm's scriptlets:\n%s", out)
	}
}

func TestInstallUnderPrefix(t *testing.T) {
	destdir := t.TempDir()
	install := func() string {
		cmd := exec.Command("go", "run", "./internal/packaging/mkpkg", "-bin", bin, "-prefix", "/usr/local", "-destdir", destdir, "install")
		cmd.Dir = src
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("mkpkg install: %v\n%s", err, out)
		}
		return string(out)
	}
	install()
	unit, err := os.ReadFile(filepath.Join(destdir, "usr/local/lib/systemd/system/pkg-cacher.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "\nExecStart=/usr/local/bin/pkg-cacher serve -c /etc/pkg-cacher/pkg-cacher.conf\n") {
		t.Errorf("the unit installed under /usr/local does not run /usr/local/bin/pkg-cacher:\n%s", unit)
	}
	for _, p := range []string{"usr/local/bin/vzpkg", "usr/local/share/man/man8/vzpkg.8.gz", "usr/local/share/vzpkg/templates/debian/config.yaml", "etc/vzpkg/vzpkg.conf"} {
		if _, err := os.Stat(filepath.Join(destdir, p)); err != nil {
			t.Errorf("make install: %v", err)
		}
	}
	conf := filepath.Join(destdir, "etc/pkg-cacher/pkg-cacher.conf")
	if err := os.WriteFile(conf, []byte("daemon_port = 3143\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := install(); !strings.Contains(out, "kept "+conf) {
		t.Errorf("a second install does not say it kept the changed pkg-cacher.conf:\n%s", out)
	}
	if data, _ := os.ReadFile(conf); string(data) != "daemon_port = 3143\n" {
		t.Errorf("a second install replaced the administrator's pkg-cacher.conf with %d bytes", len(data))
	}
}

func TestUnitsVerify(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed (Debian's systemd): the units are checked in the container test")
	}
	// Installed under a prefix of its own, the units name programs that
	// exist on this host. Only that prefix is written: never /etc.
	prefix := t.TempDir()
	files, err := packaging.Layout(src, bin, prefix, packaging.Install)
	if err != nil {
		t.Fatal(err)
	}
	files = slices.DeleteFunc(files, func(f packaging.File) bool { return !strings.HasPrefix(f.Path, prefix+"/") })
	if err := packaging.InstallTo(files, "", func(packaging.File, string) {}); err != nil {
		t.Fatal(err)
	}
	units, _ := filepath.Glob(filepath.Join(prefix, "lib/systemd/system/*"))
	if len(units) != 3 {
		t.Fatalf("units: %v", units)
	}
	run(t, "systemd-analyze", "verify", "--man=no", units[0], units[1], units[2])
	// Its exposure, as docs/install.md gives it (1.5 with systemd 252).
	out := run(t, "systemd-analyze", "security", "--offline=true", "--threshold=20", filepath.Join(prefix, "lib/systemd/system/pkg-cacher.service"))
	if !strings.Contains(out, "Overall exposure level for pkg-cacher.service: 1.") {
		t.Errorf("pkg-cacher.service's exposure is not under 2 (OK):\n%s", out)
	}
}
