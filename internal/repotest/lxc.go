package repotest

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// LXC is a container a test booted with LXC. Its network namespace holds
// loopback only (lxc.net.0.type = empty); Forward lets it reach the host.
type LXC struct {
	Name string
	PID  int // its init, as the host sees it
}

var lxcCount atomic.Int32 // containers started by this process, for unique names

// StartLXC boots the root directory of a systemd distribution as an LXC
// container and waits until systemd has finished booting it (its boot
// empties /tmp, where apt verifies signatures). It skips the test when LXC
// cannot start a container here. The container is killed and its
// configuration removed when the test ends. It requires Debian's lxc.
func StartLXC(t testing.TB, root string) *LXC {
	t.Helper()
	for _, tool := range []string{"lxc-start", "lxc-attach", "lxc-info", "lxc-stop"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: scripts/setup.sh installs Debian's lxc", tool)
		}
	}
	c := &LXC{Name: fmt.Sprintf("vzpkg-test-%d-%d", os.Getpid(), lxcCount.Add(1))}
	dir := filepath.Join("/var/lib/lxc", c.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("lxc-stop", "-n", c.Name, "-k").Run()
		os.RemoveAll(dir)
	})
	config := "lxc.include = /usr/share/lxc/config/common.conf\nlxc.uts.name = " + c.Name + "\nlxc.rootfs.path = dir:" + root +
		"\nlxc.net.0.type = empty\nlxc.apparmor.profile = unconfined\n"
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(t.TempDir(), "lxc.log")
	if out, err := exec.Command("lxc-start", "-n", c.Name, "-l", "ERROR", "-o", logFile).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(logFile)
		t.Skipf("LXC cannot start a container here: lxc-start: %v: %s\n%s", err, out, log)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, _ := exec.Command("lxc-info", "-n", c.Name, "-p", "-H").Output()
		if _, err := fmt.Sscan(string(out), &c.PID); err == nil && c.PID > 0 {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile)
			t.Skipf("LXC started %s but it has no init process after 30 s:\n%s", c.Name, log)
		}
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, _ := exec.Command("lxc-attach", "-n", c.Name, "--clear-env", "--", "systemctl", "is-system-running").Output()
		if s := strings.TrimSpace(string(out)); s == "running" || s == "degraded" {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container has not finished booting in 60 s: systemctl is-system-running says %q", out)
		}
	}
}

// Attach runs a command in the container with a clean environment (PATH,
// C.UTF-8, DEBIAN_FRONTEND=noninteractive) and returns its output, standard
// error included.
func (c *LXC) Attach(args ...string) (string, error) {
	out, err := exec.Command("lxc-attach", append([]string{"-n", c.Name, "--clear-env",
		"-v", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "-v", "LANG=C.UTF-8", "-v", "DEBIAN_FRONTEND=noninteractive", "--"}, args...)...).CombinedOutput()
	return string(out), err
}

// Forward listens on addr inside the container's network namespace and
// forwards every connection to the same address on the host: the
// container reaches a pkg-cacher of the host at the address its
// sources.list names.
func (c *LXC) Forward(t testing.TB, addr string) {
	t.Helper()
	ln, err := func() (net.Listener, error) {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			return nil, err
		}
		defer self.Close()
		ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", c.PID))
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
