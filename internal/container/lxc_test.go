package container_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vzpkg2/internal/repotest"
)

func TestLXCContainerNetwork(t *testing.T) {
	if _, err := exec.LookPath("lxc-ls"); err != nil {
		t.Fatalf("lxc-ls is not installed: scripts/setup.sh installs Debian's lxc")
	}
	c := repotest.StartCacher(t, bin)
	out := t.TempDir()
	const template = "debian-12-x86_64-minimal"
	ok(t, "--templates", "../../templates", "create", "cache", template, "--cache-dir", out, "--cacher", c.URL, "--quiet")
	root := filepath.Join(t.TempDir(), "rootfs")
	extract(t, filepath.Join(out, template+".tar.gz"), root)

	lxc := repotest.StartLXC(t, root)
	lxc.Forward(t, strings.TrimSuffix(strings.TrimPrefix(c.URL, "http://"), "/"))
	name := lxc.Name
	ct := "lxc:" + name

	before := packages(t, ok(t, "list", ct))
	if _, ok := before["hello"]; ok || len(before) < 80 {
		t.Fatalf("the container lists %d packages, hello among them", len(before))
	}
	if stdout := ok(t, "install", ct, "hello"); !strings.HasPrefix(stdout, "installed hello 2.10-") {
		t.Errorf("install printed %q", stdout)
	}
	if n := c.Misses(t, containing("/hello_")); n != 1 {
		t.Errorf("pkg-cacher fetched hello's .deb upstream %d times, want once", n)
	}
	if out, err := exec.Command("lxc-attach", "-n", name, "--", "hello").CombinedOutput(); err != nil || !strings.Contains(string(out), "Hello, world!") {
		t.Errorf("hello in the running container: %q %v", out, err)
	}
	if v := packages(t, ok(t, "list", ct))["hello"]; !strings.HasPrefix(v, "2.10-") {
		t.Errorf("list shows hello as %q", v)
	}
	r := vzpkg(t, "install", ct, "vzpkg-no-such-package")
	if r.code != 1 {
		t.Errorf("install of an unknown package: exit %d, want 1", r.code)
	}
	oneLine(t, r.stderr, ct, "Unable to locate package vzpkg-no-such-package")
	if out := ok(t, "remove", ct, "hello"); out != "removed hello\n" {
		t.Errorf("remove printed %q", out)
	}
	if after := packages(t, ok(t, "list", ct)); len(after) != len(before) {
		t.Errorf("after remove: %d packages, want %d", len(after), len(before))
	}
	if _, err := os.Stat(filepath.Join(root, "usr/bin/hello")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("/usr/bin/hello after remove: %v", err)
	}
	if out, _ := exec.Command("lxc-info", "-n", name, "-s", "-H").Output(); strings.TrimSpace(string(out)) != "RUNNING" {
		t.Errorf("the container is %q after the operations, want RUNNING", out)
	}

	// Stopped, it is reached through its rootfs.
	if out, err := exec.Command("lxc-stop", "-n", name, "-k").CombinedOutput(); err != nil {
		t.Fatalf("lxc-stop: %v %s", err, out)
	}
	if after := packages(t, ok(t, "list", ct)); len(after) != len(before) {
		t.Errorf("list of the stopped container: %d packages, want %d", len(after), len(before))
	}
	r = vzpkg(t, "list", "lxc:vzpkg-no-such-container")
	if r.code != 1 {
		t.Errorf("list of an unknown container: exit %d, want 1", r.code)
	}
	oneLine(t, r.stderr, "container lxc:vzpkg-no-such-container", "doesn't exist")
	noMounts(t, root)
}
