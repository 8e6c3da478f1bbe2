package rootfs_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vzpkg2/internal/dummy"
	"vzpkg2/internal/rootfs"
	"vzpkg2/internal/tmpl"
)

// rpmRoot makes a root holding the host's rpm and rpmdb with their
// libraries and configuration, reading its database from dbpath, and an
// rpm database in /var/lib/rpm (where a dnf build leaves it) written by the
// host's rpm, holding one package, kernel.
func rpmRoot(t *testing.T, dbpath string) string {
	t.Helper()
	root := t.TempDir()
	copyIn := func(p string) {
		t.Helper()
		dst := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		if out, err := exec.Command("cp", "-rL", p, dst).CombinedOutput(); err != nil {
			t.Fatalf("cp %s: %v\n%s", p, err, out)
		}
	}
	for _, prog := range []string{"/usr/bin/rpm", "/usr/bin/rpmdb"} {
		copyIn(prog)
		out, err := exec.Command("ldd", prog).Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range strings.Fields(string(out)) {
			if strings.HasPrefix(f, "/") {
				copyIn(f)
			}
		}
	}
	copyIn("/usr/lib/rpm")
	os.MkdirAll(filepath.Join(root, "etc/rpm"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/rpm/macros.dbpath"), []byte("%_dbpath "+dbpath+"\n"), 0o644)
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	pkg, err := dummy.RPM(context.Background(), t.TempDir(), tmpl.Dummy{Name: "kernel", Version: "99:1.0-vz1"})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("rpm", "--root", root, "--dbpath", "/var/lib/rpm", "-i", "--justdb", "--nodeps", pkg).CombinedOutput(); err != nil {
		t.Fatalf("rpm -i: %v\n%s", err, out)
	}
	return root
}

// chrootRPM lists the root's packages with its own rpm.
func chrootRPM(t *testing.T, root string) string {
	t.Helper()
	m, err := rootfs.MountAPI(root)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmount()
	out, err := rootfs.Command(context.Background(), root, nil, "rpm", "-qa").CombinedOutput()
	if err != nil {
		t.Fatalf("rpm -qa in the root: %v\n%s", err, out)
	}
	return string(out)
}

// TestRpmdbRebuild runs the rpmdb-rebuild fixup on roots whose own rpm
// reads its database where the build left it, and elsewhere (Fedora's
// /usr/lib/sysimage/rpm). (Needs root, for chroot.)
func TestRpmdbRebuild(t *testing.T) {
	t.Run("in place", func(t *testing.T) {
		root := rpmRoot(t, "/var/lib/rpm")
		if err := rootfs.Fixup(root, []string{"rpmdb-rebuild"}); err != nil {
			t.Fatal(err)
		}
		if got := chrootRPM(t, root); got != "kernel-1.0-vz1.noarch\n" {
			t.Errorf("the root's rpm lists %q, want kernel", got)
		}
		if fi, err := os.Lstat(filepath.Join(root, "var/lib/rpm")); err != nil || !fi.IsDir() {
			t.Errorf("/var/lib/rpm is no longer a directory: %v", err)
		}
	})
	t.Run("moved to sysimage", func(t *testing.T) {
		root := rpmRoot(t, "/usr/lib/sysimage/rpm")
		if got := chrootRPM(t, root); got != "" {
			t.Fatalf("before the fixup the root's rpm lists %q: the test cannot tell a move", got)
		}
		if err := rootfs.Fixup(root, []string{"rpmdb-rebuild"}); err != nil {
			t.Fatal(err)
		}
		if got := chrootRPM(t, root); got != "kernel-1.0-vz1.noarch\n" {
			t.Errorf("the root's rpm lists %q, want kernel", got)
		}
		if l, err := os.Readlink(filepath.Join(root, "var/lib/rpm")); err != nil || l != "../../usr/lib/sysimage/rpm" {
			t.Errorf("/var/lib/rpm: link to %q (%v), want ../../usr/lib/sysimage/rpm", l, err)
		}
	})
	t.Run("no rpm in the root", func(t *testing.T) {
		root := t.TempDir()
		os.MkdirAll(filepath.Join(root, "var/lib/rpm"), 0o755)
		os.WriteFile(filepath.Join(root, "var/lib/rpm/rpmdb.sqlite"), []byte("db"), 0o644)
		if err := rootfs.Fixup(root, []string{"rpmdb-rebuild"}); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(filepath.Join(root, "var/lib/rpm/rpmdb.sqlite")); string(got) != "db" {
			t.Errorf("the database of a root without rpm changed: %q", got)
		}
	})
}
