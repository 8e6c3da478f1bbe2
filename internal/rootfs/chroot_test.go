package rootfs

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// probe is a static program run in a chroot: it prints its environment and
// the file descriptors it has open.
const probe = `package main

import (
	"fmt"
	"os"
	"syscall"
)

func main() {
	for _, e := range os.Environ() {
		fmt.Println("env", e)
	}
	for fd := 0; fd < 4096; fd++ {
		if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0); errno == 0 {
			fmt.Println("fd", fd)
		}
	}
}
`

// TestCommandInChrootGetsNothingOfTheHost runs a program in a chroot with
// Command while vzpkg has a host variable set and a host file open without
// close-on-exec (as one inherited from its parent would be): the program
// sees only the fixed environment and descriptors 0, 1 and 2. (Needs root
// for chroot, and the go command to build the probe.)
func TestCommandInChrootGetsNothingOfTheHost(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(t.TempDir(), "probe.go")
	if err := os.WriteFile(src, []byte(probe), 0o644); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", filepath.Join(root, "usr/bin/vzpkg-probe"), src)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the probe: %v\n%s", err, out)
	}

	t.Setenv("VZPKG_HOST_SECRET", "from-the-host")
	f, err := os.Open("/etc/hostname")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	leaked, err := unix.Dup(int(f.Fd())) // dup'ed descriptors are not close-on-exec
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(leaked)

	out, err := Command(context.Background(), root, []string{"DEBIAN_FRONTEND=noninteractive"}, "vzpkg-probe").Output()
	if err != nil {
		t.Fatalf("run the probe in a chroot: %v", err)
	}
	var env, fds []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if v, ok := strings.CutPrefix(l, "env "); ok {
			env = append(env, v)
		} else if v, ok := strings.CutPrefix(l, "fd "); ok {
			fds = append(fds, v)
		}
	}
	want := append(slices.Clone(ChrootEnv), "DEBIAN_FRONTEND=noninteractive")
	slices.Sort(env)
	slices.Sort(want)
	if !slices.Equal(env, want) {
		t.Errorf("environment in the chroot:\n got %q\nwant %q", env, want)
	}
	if !slices.Equal(fds, []string{"0", "1", "2"}) {
		t.Errorf("open descriptors in the chroot: got %v, want 0 1 2 (descriptor %d was open on the host)", fds, leaked)
	}
}
