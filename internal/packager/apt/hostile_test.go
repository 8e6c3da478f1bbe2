package apt_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vzpkg2/internal/packager"
	"vzpkg2/internal/packager/apt"
	"vzpkg2/internal/rootfs/rootfstest"
	"vzpkg2/internal/tmpl"
)

// TestUpdateOfHostileRootStaysInside runs Update on roots where a place it
// writes to before running apt-get (its apt list file, the directory the
// dummy packages and the signing keys are copied to, the dpkg excludes
// directory, resolv.conf) is a symbolic link out of the root. The roots have
// no apt-get, so Update fails after that writing: the sentinel the link
// points at must be unchanged, nothing may be left mounted and the root
// must not keep the list file. (Needs root, for the mounts and chroot.)
func TestUpdateOfHostileRootStaysInside(t *testing.T) {
	key := filepath.Join(t.TempDir(), "debian.gpg")
	dummy := filepath.Join(t.TempDir(), "udev_99_all.deb")
	for _, f := range []string{key, dummy} {
		if err := os.WriteFile(f, []byte("not a real "+filepath.Base(f)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cacher, _ := url.Parse("http://127.0.0.1:9/")
	for _, tc := range []struct {
		link   string // made a link to the sentinel directory
		file   string // made a link to a file in the sentinel instead
		cacher *url.URL
	}{
		{file: "var/lib/vzpkg-update.list", cacher: cacher},
		{link: "var/lib", cacher: cacher},
		{link: "tmp", cacher: cacher},
		{link: "etc/apt/trusted.gpg.d", cacher: cacher},
		{link: "etc/apt", cacher: cacher},
		{link: "etc/dpkg/dpkg.cfg.d", cacher: cacher},
		{link: "etc", cacher: cacher},
		{file: "etc/resolv.conf"}, // no cacher: Update borrows the host's resolv.conf
		{link: "etc/resolv.conf"}, //
	} {
		for _, kind := range []string{"absolute", "relative"} {
			name := tc.link + "/" + kind
			if tc.file != "" {
				name = tc.file + "-to-a-file/" + kind
			}
			if tc.cacher == nil {
				name += "/no-cacher"
			}
			t.Run(name, func(t *testing.T) {
				base, err := filepath.EvalSymlinks(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				root, sentinel := filepath.Join(base, "root"), filepath.Join(base, "sentinel")
				rootfstest.Sentinel(t, sentinel)
				for _, d := range []string{"etc/apt/trusted.gpg.d", "etc/dpkg/dpkg.cfg.d", "var/lib", "tmp", "usr/sbin"} {
					if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
						t.Fatal(err)
					}
				}
				if tc.link != "" {
					rootfstest.Link(t, root, tc.link, sentinel, kind == "relative")
				} else {
					rootfstest.Link(t, root, tc.file, filepath.Join(sentinel, "sources.list"), kind == "relative")
				}
				before := rootfstest.Sums(t, sentinel)
				mounts := rootfstest.MountPoints(t)
				t.Cleanup(func() { rootfstest.DetachNew(t, mounts, base) })

				def := &tmpl.Definition{Name: "debian-12-x86_64", Suite: "bookworm", Keys: []string{key},
					PathExclude: []string{"/usr/share/doc/*"},
					Repos: []tmpl.Repo{{Name: "main", Mirrors: []string{"http://deb.debian.org/debian"},
						Suites: []string{"bookworm"}, Components: []string{"main"}}}}
				err = apt.Apt{}.Update(context.Background(), root, def, packager.Env{Cacher: tc.cacher, Dummies: []string{dummy}})
				if err == nil {
					t.Fatal("Update of a root without apt-get succeeded")
				}
				t.Logf("Update: %.200s", err)
				if ch := rootfstest.Changes(before, rootfstest.Sums(t, sentinel)); len(ch) > 0 {
					t.Errorf("Update changed the sentinel outside the root:\n%s", strings.Join(ch, "\n"))
				}
				if left := rootfstest.NewMounts(t, mounts, base); len(left) > 0 {
					t.Errorf("mounted after Update: %v", left)
				}
				if fi, err := os.Lstat(filepath.Join(root, "var/lib/vzpkg-update.list")); tc.link != "var/lib" && err == nil && fi.Mode().IsRegular() {
					t.Error("Update left its list file in the root")
				}
			})
		}
	}
}
