package dnf_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vzpkg2/internal/packager"
	"vzpkg2/internal/packager/dnf"
	"vzpkg2/internal/rootfs/rootfstest"
)

// TestHostileRootStaysInside runs Install, Update and ConfigureRepos on
// roots where a place dnf or vzpkg writes to (dnf's history, the rpm
// database, the private cache and log directory dnf puts under the root,
// the repository directory) is a symbolic link out of the root. The
// repository is unreachable, so each call fails, at the latest when dnf
// fetches metadata: the sentinel the link points at must be unchanged and
// nothing may be left mounted. (Needs root, for the mounts.)
func TestHostileRootStaysInside(t *testing.T) {
	key := filepath.Join(t.TempDir(), "key.asc")
	os.WriteFile(key, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot a real key\n-----END PGP PUBLIC KEY BLOCK-----\n"), 0o644)
	spec := &packager.Spec{Name: "vztest-1-x86_64", Arch: hostArch(t), Releasever: "1", Keys: []string{key},
		Packages: []string{"vz-dash"},
		Repos:    []packager.Repo{{Name: "base", Mirrors: []string{"http://127.0.0.1:9/1/"}}}}
	cacher, _ := url.Parse("http://127.0.0.1:9/")
	ops := map[string]func(root string) error{
		"install": func(root string) error {
			return dnf.Dnf{}.Install(context.Background(), root, spec, packager.Env{Cacher: cacher}, []string{"vz-extra"})
		},
		"update": func(root string) error {
			_, err := dnf.Dnf{}.Update(context.Background(), root, spec, packager.Env{}, nil)
			return err
		},
		"configure-repos": func(root string) error {
			s := *spec
			s.Keys = []string{"https://example.org/RPM-GPG-KEY"}
			return dnf.Dnf{}.ConfigureRepos(context.Background(), root, &s, cacher)
		},
	}
	for _, link := range []string{"var/lib/dnf", "var/lib/rpm", "var/lib", "var", "tmp", "etc/yum.repos.d", "etc"} {
		for _, kind := range []string{"absolute", "relative"} {
			for op, fn := range ops {
				t.Run(link+"/"+kind+"/"+op, func(t *testing.T) {
					base, err := filepath.EvalSymlinks(t.TempDir())
					if err != nil {
						t.Fatal(err)
					}
					root, sentinel := filepath.Join(base, "root"), filepath.Join(base, "sentinel")
					rootfstest.Sentinel(t, sentinel)
					for _, d := range []string{"etc/yum.repos.d", "var/lib/rpm", "var/lib/dnf", "tmp"} {
						if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
							t.Fatal(err)
						}
					}
					os.WriteFile(filepath.Join(root, "etc/yum.repos.d/fedora.repo"), []byte("[fedora]\n"), 0o644)
					rootfstest.Link(t, root, link, sentinel, kind == "relative")
					before := rootfstest.Sums(t, sentinel)
					mounts := rootfstest.MountPoints(t)
					t.Cleanup(func() { rootfstest.DetachNew(t, mounts, base) })

					err = fn(root)
					if err == nil && op != "configure-repos" {
						t.Fatalf("%s from an unreachable repository succeeded", op)
					}
					if err == nil && op == "configure-repos" && strings.HasPrefix(link, "etc") {
						t.Fatalf("ConfigureRepos through a link out of the root succeeded")
					}
					t.Logf("%s: %.200v", op, err)
					if ch := rootfstest.Changes(before, rootfstest.Sums(t, sentinel)); len(ch) > 0 {
						t.Errorf("%s changed the sentinel outside the root:\n%s", op, strings.Join(ch, "\n"))
					}
					if left := rootfstest.NewMounts(t, mounts, base); len(left) > 0 {
						t.Errorf("mounted after %s: %v", op, left)
					}
				})
			}
		}
	}
}
