package apt_test

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vzpkg2/internal/packager"
	"vzpkg2/internal/packager/apt"
	"vzpkg2/internal/rootfs/rootfstest"
	"vzpkg2/internal/tmpl"
)

// fakeAptGet stands in for the root's apt-get: it writes down what it was
// run with and what it found in the root, and succeeds.
const fakeAptGet = `package main

import (
	"fmt"
	"os"
	"strings"
)

func main() {
	f, err := os.OpenFile("/var/log/apt-get.runs", os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		os.Exit(2)
	}
	defer f.Close()
	policy, err := os.ReadFile("/usr/sbin/policy-rc.d")
	fmt.Fprintf(f, "run %s\n", os.Args[len(os.Args)-1])
	fmt.Fprintf(f, "policy-rc.d %q %v\n", policy, err)
	list, err := os.ReadFile("/var/lib/vzpkg-update.list")
	fmt.Fprintf(f, "list %q %v\n", list, err)
	_, err = os.Stat("/proc/self/status")
	fmt.Fprintf(f, "proc %v\n", err)
	fmt.Fprintf(f, "env %s\n", strings.Join(os.Environ(), " "))
}
`

// TestUpdateRunsAptGetInACleanChroot runs Update on a root whose apt-get is
// a static program that writes down what it sees: the list of the
// definition's mirrors, a policy-rc.d that stops services from starting,
// /proc, and only the fixed environment. Afterwards the root has its own
// policy-rc.d back, no list file and nothing mounted. (Needs root, and the
// go command to build the stand-in.)
func TestUpdateRunsAptGetInACleanChroot(t *testing.T) {
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(base, "root")
	for _, d := range []string{"usr/sbin", "usr/bin", "var/lib", "var/log", "tmp", "etc/apt"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	const ownPolicy = "#!/bin/sh\nexit 0\n"
	os.WriteFile(filepath.Join(root, "usr/sbin/policy-rc.d"), []byte(ownPolicy), 0o755)
	src := filepath.Join(t.TempDir(), "apt-get.go")
	os.WriteFile(src, []byte(fakeAptGet), 0o644)
	build := exec.Command("go", "build", "-o", filepath.Join(root, "usr/bin/apt-get"), src)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the stand-in apt-get: %v\n%s", err, out)
	}
	mounts := rootfstest.MountPoints(t)
	t.Cleanup(func() { rootfstest.DetachNew(t, mounts, base) })
	t.Setenv("VZPKG_HOST_SECRET", "from-the-host")

	def := &tmpl.Definition{Name: "debian-12-x86_64", Suite: "bookworm", Packages: []string{"hello"},
		Repos: []tmpl.Repo{{Name: "main", Mirrors: []string{"http://deb.debian.org/debian"}, Suites: []string{"bookworm"}, Components: []string{"main"}}}}
	cacher, _ := url.Parse("http://127.0.0.1:9/")
	if err := (apt.Apt{}).Update(context.Background(), root, def, packager.Env{Cacher: cacher}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "var/log/apt-get.runs"))
	if err != nil {
		t.Fatal(err)
	}
	log := string(data)
	if runs := strings.Count(log, "run "); !strings.Contains(log, "run update\n") || !strings.Contains(log, "run dist-upgrade\n") || !strings.Contains(log, "run hello\n") || runs != 3 {
		t.Errorf("apt-get runs: want update, dist-upgrade, install hello; it wrote:\n%s", log)
	}
	for _, want := range []string{
		`list "deb http://deb.debian.org/debian bookworm main\n" <nil>`,
		`policy-rc.d "#!/bin/sh\n# Written by vzpkg for an update: no service starts in the chroot.\nexit 101\n" <nil>`,
		"proc <nil>",
		"env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive\n"} {
		if strings.Count(log, want) != strings.Count(log, "run ") {
			t.Errorf("apt-get did not see %q on each of its runs; it wrote:\n%s", want, log)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(root, "usr/sbin/policy-rc.d")); string(got) != ownPolicy {
		t.Errorf("the root's own policy-rc.d after Update: got %q, want %q", got, ownPolicy)
	}
	if _, err := os.Lstat(filepath.Join(root, "var/lib/vzpkg-update.list")); err == nil {
		t.Error("Update left its list file in the root")
	}
	if left := rootfstest.NewMounts(t, mounts, base); len(left) > 0 {
		t.Errorf("mounted after Update: %v", left)
	}
}
