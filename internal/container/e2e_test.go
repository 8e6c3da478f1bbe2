package container_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vzpkg2/internal/repotest"
	"vzpkg2/internal/rootfs"
)

// These tests need root and minutes; the Debian ones the network to reach
// deb.debian.org, the RPM ones dnf, rpm, createrepo-c and gnupg. They run
// the real vzpkg and pkg-cacher binaries on containers extracted from
// templates vzpkg builds.

var bin string // directory holding the vzpkg and pkg-cacher binaries built for the tests

func TestMain(m *testing.M) { repotest.RunWithBinaries(m, &bin) }

// containing matches the URLs that contain part.
func containing(part string) func(string) bool {
	return func(url string) bool { return strings.Contains(url, part) }
}

// result is what a vzpkg run printed and its exit status.
type result struct {
	stdout, stderr string
	code           int
}

// vzpkg runs the vzpkg binary with args.
func vzpkg(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "vzpkg"), args...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("vzpkg %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// ok runs vzpkg and fails the test unless it exits 0.
func ok(t *testing.T, args ...string) string {
	t.Helper()
	r := vzpkg(t, args...)
	if r.code != 0 {
		t.Fatalf("vzpkg %s: exit status %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// extract unpacks a template into dir.
func extract(t *testing.T, tarball, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "-xpf", tarball, "-C", dir, "--numeric-owner", "--xattrs", "--xattrs-include=*").CombinedOutput(); err != nil {
		t.Fatalf("extract: %v\n%s", err, out)
	}
}

// packages parses vzpkg list output into name → "version arch".
func packages(t *testing.T, out string) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || strings.Join(strings.Fields(lines[0]), " ") != "NAME VERSION ARCH" {
		t.Fatalf("vzpkg list printed no header:\n%s", out)
	}
	pkgs := map[string]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Fatalf("vzpkg list line %q: want NAME VERSION ARCH", l)
		}
		pkgs[f[0]] = f[1] + " " + f[2]
	}
	return pkgs
}

// noMounts fails when anything is mounted at or below dir.
func noMounts(t *testing.T, dir string) {
	t.Helper()
	if left, err := rootfs.MountsUnder(dir); err != nil || len(left) > 0 {
		t.Errorf("mounts left under %s: %v %v", dir, left, err)
	}
}

// oneLine fails unless msg is one line holding each of want.
func oneLine(t *testing.T, msg string, want ...string) {
	t.Helper()
	if strings.Count(strings.TrimSpace(msg), "\n") != 0 {
		t.Errorf("the error is not one line:\n%s", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("the error %q does not say %q", msg, w)
		}
	}
}

func TestDebianContainerThroughPkgCacherNetwork(t *testing.T) {
	c := repotest.StartCacher(t, bin)
	out := t.TempDir()
	const template = "debian-12-x86_64-minimal"
	ok(t, "--templates", "../../templates", "create", "cache", template, "--cache-dir", out, "--cacher", c.URL, "--quiet")
	root := filepath.Join(t.TempDir(), "ct")
	extract(t, filepath.Join(out, template+".tar.gz"), root)
	if rec, err := os.ReadFile(filepath.Join(root, "etc/vzpkg/packager")); err != nil || !strings.Contains(string(rec), "\npackager=apt\n") ||
		!strings.Contains(string(rec), "\nsuite=bookworm\n") {
		t.Errorf("the template does not record its packager: %q %v", rec, err)
	}
	before := packages(t, ok(t, "list", root))
	if _, ok := before["hello"]; ok || len(before) < 80 {
		t.Fatalf("the template lists %d packages, hello among them: %v", len(before), before)
	}

	t.Run("install", func(t *testing.T) {
		stdout := ok(t, "install", root, "hello")
		if !strings.HasPrefix(stdout, "installed hello 2.10-") {
			t.Errorf("install printed %q", stdout)
		}
		if n := c.Misses(t, containing("/hello_")); n != 1 {
			t.Errorf("pkg-cacher fetched hello's .deb upstream %d times, want once: install did not go through it", n)
		}
		pkgs := packages(t, ok(t, "list", root))
		if v := pkgs["hello"]; !strings.HasPrefix(v, "2.10-") || !strings.HasSuffix(v, " amd64") {
			t.Errorf("list shows hello as %q, want 2.10-N amd64", v)
		}
		if len(pkgs) != len(before)+1 {
			t.Errorf("list shows %d packages after installing hello, want %d", len(pkgs), len(before)+1)
		}
		if out, err := exec.Command("chroot", root, "hello").CombinedOutput(); err != nil || !strings.Contains(string(out), "Hello, world!") {
			t.Errorf("hello in the container: %q %v", out, err)
		}
		// The container's path filters stay: no manual page.
		if _, err := os.Lstat(filepath.Join(root, "usr/share/man/man1/hello.1.gz")); err == nil {
			t.Error("hello brought its manual page, which the template excludes")
		}
		if _, err := os.Stat(filepath.Join(root, "etc/dpkg/dpkg.cfg.d/excludes")); err != nil {
			t.Errorf("the template's excludes file is gone: %v", err)
		}
		for _, leftover := range []string{"usr/sbin/policy-rc.d", "var/lib/vzpkg-update.list"} {
			if _, err := os.Lstat(filepath.Join(root, leftover)); err == nil {
				t.Errorf("install left /%s in the container", leftover)
			}
		}
		noMounts(t, root)
	})

	t.Run("info and json", func(t *testing.T) {
		if out := ok(t, "info", root, "hello"); !strings.Contains(out, "Package: hello\nVersion: 2.10-") || !strings.Contains(out, "Packager: apt\n") {
			t.Errorf("info printed %q", out)
		}
		if out := ok(t, "list", root, "--json"); !strings.Contains(out, `{"name":"hello","version":"2.10-`) {
			t.Errorf("list --json lacks hello: %.300s", out)
		}
	})

	t.Run("check-updates says none", func(t *testing.T) {
		r := vzpkg(t, "check-updates", root)
		if r.code != 0 || r.stdout != "no updates\n" {
			t.Errorf("check-updates: exit %d, printed %q %s; want 0 and \"no updates\"", r.code, r.stdout, r.stderr)
		}
		noMounts(t, root)
	})

	t.Run("unknown package", func(t *testing.T) {
		r := vzpkg(t, "install", root, "vzpkg-no-such-package")
		if r.code != 1 {
			t.Errorf("install of an unknown package: exit %d, want 1", r.code)
		}
		oneLine(t, r.stderr, root, "install vzpkg-no-such-package", "apt-get failed", "Unable to locate package vzpkg-no-such-package")
		if after := packages(t, ok(t, "list", root)); len(after) != len(before)+1 {
			t.Errorf("the failed install changed the package list: %d packages, want %d", len(after), len(before)+1)
		}
		noMounts(t, root)
	})

	t.Run("locked package database", func(t *testing.T) {
		f, err := os.OpenFile(filepath.Join(root, "var/lib/dpkg/lock-frontend"), os.O_RDWR|os.O_CREATE, 0o640)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &unix.Flock_t{Type: unix.F_WRLCK}); err != nil {
			t.Fatal(err)
		}
		r := vzpkg(t, "remove", root, "hello")
		if r.code != 1 {
			t.Errorf("remove with the database locked: exit %d, want 1", r.code)
		}
		oneLine(t, r.stderr, "remove hello", "Could not get lock")
		if _, ok := packages(t, ok(t, "list", root))["hello"]; !ok {
			t.Error("hello is gone after a remove that failed")
		}
		noMounts(t, root)
	})

	t.Run("remove", func(t *testing.T) {
		if out := ok(t, "remove", root, "hello"); out != "removed hello\n" {
			t.Errorf("remove printed %q", out)
		}
		after := packages(t, ok(t, "list", root))
		if _, ok := after["hello"]; ok || len(after) != len(before) {
			t.Errorf("after remove: hello %q, %d packages, want it gone and %d", after["hello"], len(after), len(before))
		}
		r := vzpkg(t, "remove", root, "hello")
		if r.code != 1 {
			t.Errorf("remove of a package not installed: exit %d, want 1", r.code)
		}
		oneLine(t, r.stderr, "hello is not installed")
		noMounts(t, root)
	})

	t.Run("interrupted install leaves no mount", func(t *testing.T) {
		cmd := exec.Command(filepath.Join(bin, "vzpkg"), "install", root, "hello")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
			if m, _ := rootfs.MountsUnder(root); len(m) >= 2 {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatal("install mounted nothing in a minute")
			}
		}
		cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err == nil {
			t.Error("an interrupted install exited 0")
		}
		oneLine(t, stderr.String(), "install hello", "context canceled")
		noMounts(t, root)
	})
	if data, _ := os.ReadFile("/proc/self/mounts"); bytes.Contains(data, []byte(root)) {
		t.Errorf("/proc/self/mounts still names %s", root)
	}
}
