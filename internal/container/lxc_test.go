package container_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vzpkg2/internal/repotest"
)

// listenIn listens on addr inside the network namespace of process pid
// and forwards every connection to the same address on the host: an LXC
// container with no network (lxc.net.0.type = empty) reaches the host's
// pkg-cacher at the address its sources.list names.
func listenIn(t *testing.T, pid int, addr string) {
	t.Helper()
	ln, err := func() (net.Listener, error) {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			return nil, err
		}
		defer self.Close()
		ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			runtime.UnlockOSThread()
			return nil, err
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			return nil, err
		}
		ln, lerr := net.Listen("tcp", addr)
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			return nil, err // the thread stays locked, and goes with this goroutine
		}
		runtime.UnlockOSThread()
		return ln, lerr
	}()
	if err != nil {
		t.Fatalf("listen on %s in the container's network namespace: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				out, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer out.Close()
				go io.Copy(out, in)
				io.Copy(in, out)
			}()
		}
	}()
}

func TestLXCContainerNetwork(t *testing.T) {
	for _, tool := range []string{"lxc-start", "lxc-attach", "lxc-info", "lxc-stop", "lxc-ls"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: scripts/setup.sh installs Debian's lxc", tool)
		}
	}
	c := repotest.StartCacher(t, bin)
	out := t.TempDir()
	const template = "debian-12-x86_64-minimal"
	ok(t, "--templates", "../../templates", "create", "cache", template, "--cache-dir", out, "--cacher", c.URL, "--quiet")
	root := filepath.Join(t.TempDir(), "rootfs")
	extract(t, filepath.Join(out, template+".tar.gz"), root)

	name := fmt.Sprintf("vzpkg-test-%d", os.Getpid())
	dir := filepath.Join("/var/lib/lxc", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("lxc-stop", "-n", name, "-k").Run()
		os.RemoveAll(dir)
	})
	config := "lxc.include = /usr/share/lxc/config/common.conf\nlxc.uts.name = " + name + "\nlxc.rootfs.path = dir:" + root +
		"\nlxc.net.0.type = empty\nlxc.apparmor.profile = unconfined\n"
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(t.TempDir(), "lxc.log")
	if out, err := exec.Command("lxc-start", "-n", name, "-l", "ERROR", "-o", logFile).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(logFile)
		t.Skipf("LXC cannot start a container here: lxc-start: %v: %s\n%s", err, out, log)
	}
	var pid int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, _ := exec.Command("lxc-info", "-n", name, "-p", "-H").Output()
		if _, err := fmt.Sscan(string(out), &pid); err == nil && pid > 0 {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile)
			t.Skipf("LXC started %s but it has no init process after 30 s:\n%s", name, log)
		}
	}
	// Its boot empties /tmp (systemd-tmpfiles), where apt verifies
	// signatures: wait for it to end.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, _ := exec.Command("lxc-attach", "-n", name, "--clear-env", "--", "systemctl", "is-system-running").Output()
		if s := strings.TrimSpace(string(out)); s == "running" || s == "degraded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container has not finished booting in 60 s: systemctl is-system-running says %q", out)
		}
	}
	listenIn(t, pid, strings.TrimSuffix(strings.TrimPrefix(c.URL, "http://"), "/"))
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
