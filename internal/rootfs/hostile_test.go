package rootfs_test

import (
	"bytes"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vzpkg2/internal/packager/apt"
	"vzpkg2/internal/rootfs"
	"vzpkg2/internal/rootfs/rootfstest"
	"vzpkg2/internal/tmpl"
)

// hostileRoot builds a root with what the fixups and the repository
// configuration work on, then makes link in it a symbolic link to a
// sentinel directory beside it. It returns the root and the sentinel.
func hostileRoot(t *testing.T, link string, relative bool) (base, root, sentinel string) {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	root, sentinel = filepath.Join(base, "root"), filepath.Join(base, "sentinel")
	rootfstest.Sentinel(t, sentinel)
	for _, d := range []string{"etc/ssh", "etc/systemd/system/getty.target.wants", "etc/apt/sources.list.d", "etc/yum.repos.d",
		"etc/selinux", "var/log/apt", "var/lib/dbus", "var/lib/apt/lists/partial", "var/cache/apt/archives/partial",
		"var/cache/dnf", "usr/sbin", "proc", "dev", "sys", "run", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range map[string]string{
		"etc/machine-id": "0123456789abcdef\n", "etc/hostname": "buildhost\n", "etc/fstab": "/dev/sda1 / ext4\n",
		"etc/resolv.conf": "nameserver 10.0.0.1\n", "etc/ssh/ssh_host_ed25519_key": "secret", "usr/sbin/sshd": "\x7fELF",
		"var/log/apt/history.log": "Start-Date: ...", "var/lib/apt/lists/deb_dists_Packages": "Package: x\n",
		"var/cache/apt/archives/hello_1_all.deb": "deb", "etc/apt/sources.list": "deb http://deb.debian.org/debian bookworm main\n",
		"etc/apt/sources.list.d/extra.list": "deb http://deb.debian.org/debian bookworm-updates main\n",
		"etc/yum.repos.d/fedora.repo":       "[fedora]\n", "etc/selinux/config": "SELINUX=enforcing\n",
		"etc/systemd/system/getty.target.wants/getty@tty1.service": "[Unit]\n", "usr/sbin/policy-rc.d": "#!/bin/sh\nexit 101\n",
	} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rootfstest.Link(t, root, link, sentinel, relative)
	return base, root, sentinel
}

// TestHostileRootStaysInside runs every fixup, the apt repository
// configuration, the API mounts (and a sysfs and a tmpfs mounted with
// Mount) and the packing on roots where one place is
// a symbolic link out of the root (absolute, or relative with "../" enough
// to climb out): refusing is allowed, reaching outside is not. The sentinel
// directory the link points at must stay byte-for-byte the same, no mount
// may appear outside the root, and none may remain after the cleanup. (The
// mounts looked at are those in the directory holding the root and the
// sentinel: other packages' tests mount elsewhere at the same time.)
// (Needs root, for the mounts.)
func TestHostileRootStaysInside(t *testing.T) {
	var fixups []string
	for _, f := range tmpl.Fixups() {
		if f.Name != "rpmdb-rebuild" { // the dnf packager's, with the template's rpm
			fixups = append(fixups, f.Name)
		}
	}
	def := &tmpl.Definition{Name: "debian-12-x86_64", Suite: "bookworm", Repos: []tmpl.Repo{
		{Name: "main", Mirrors: []string{"http://deb.debian.org/debian"}, Suites: []string{"bookworm"}, Components: []string{"main"}},
	}}
	cacher, _ := url.Parse("http://127.0.0.1:3142/")
	for _, link := range rootfstest.Links {
		for _, kind := range []string{"absolute", "relative"} {
			t.Run(link+"/"+kind, func(t *testing.T) {
				base, root, sentinel := hostileRoot(t, link, kind == "relative")
				before := rootfstest.Sums(t, sentinel)
				mounts := rootfstest.MountPoints(t)
				t.Cleanup(func() { rootfstest.DetachNew(t, mounts, base) })
				unchanged := func(step string) {
					t.Helper()
					after := rootfstest.Sums(t, sentinel)
					if ch := rootfstest.Changes(before, after); len(ch) > 0 {
						t.Errorf("%s changed the sentinel outside the root:\n%s", step, strings.Join(ch, "\n"))
					}
					before = after // each step answers for its own changes
				}

				// A step may refuse a root only when the link is on its way:
				// refusing is never a way around doing the work.
				refused := func(step string, err error, onItsWay ...string) {
					t.Helper()
					if err != nil && !slices.Contains(onItsWay, link) {
						t.Errorf("%s failed where the link is not on its way: %v", step, err)
					} else if err != nil && !strings.Contains(err.Error(), "symbolic link") {
						t.Errorf("%s refused without saying that a symbolic link is why: %v", step, err)
					} else if err != nil {
						t.Logf("%s refused: %v", step, err)
					}
				}
				err := rootfs.Fixup(root, fixups)
				refused("fixups", err, "etc", "etc/systemd/system", "var/log")
				if err == nil && link != "etc" {
					if got, err := os.ReadFile(filepath.Join(root, "etc/hostname")); err != nil || len(got) != 0 {
						t.Errorf("after the fixups, the root's etc/hostname holds %q (%v), want it empty", got, err)
					}
				}
				unchanged("fixups")

				err = (apt.Apt{}).ConfigureRepos(root, def, cacher)
				refused("repository configuration", err, "etc", "etc/apt")
				unchanged("repository configuration")

				m, err := rootfs.MountAPI(root)
				refused("API mounts", err, "proc", "dev")
				// The mounts the in-container commands add go through Mount too.
				var more rootfs.Mounts
				for _, mnt := range []struct{ src, dir, fstype string }{{"sysfs", "sys", "sysfs"}, {"tmpfs", "dev/shm", "tmpfs"}} {
					err := more.Mount(root, mnt.dir, mnt.src, mnt.fstype, unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC)
					refused(mnt.dir+" mount", err, mnt.dir, path.Dir(mnt.dir))
				}
				if out := rootfstest.Outside(rootfstest.NewMounts(t, mounts, base), root); len(out) > 0 {
					t.Errorf("API mounts outside the root: %v", out)
					rootfstest.DetachNew(t, mounts, base) // before reading the sentinel: it may be a /proc now
				}
				if err := more.Unmount(); err != nil {
					t.Errorf("unmount: %v", err)
				}
				if m != nil {
					if err := m.Unmount(); err != nil {
						t.Errorf("unmount: %v", err)
					}
				}
				if err := rootfs.UnmountUnder(root); err != nil {
					t.Errorf("unmount under the root: %v", err)
				}
				if left := rootfstest.NewMounts(t, mounts, base); len(left) > 0 {
					t.Errorf("mounted after the cleanup: %v", left)
					rootfstest.DetachNew(t, mounts, base)
				}
				unchanged("API mounts")

				var tar bytes.Buffer
				if err := rootfs.Pack(root, &tar, time.Time{}); err != nil {
					t.Errorf("pack: %v", err)
				}
				if bytes.Contains(tar.Bytes(), []byte(rootfstest.Marker)) {
					t.Error("the archive holds a file of the sentinel outside the root")
				}
				unchanged("packing")
			})
		}
	}
}
