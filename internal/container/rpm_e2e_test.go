package container_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vzpkg2/internal/repotest"
)

const rpmTemplate = "vztest-1-x86_64-minimal"

// rpmTree writes a template tree for the RPM repository at upstream/1/ and
// returns its path.
func rpmTree(t *testing.T, upstream string) string {
	t.Helper()
	tree := t.TempDir()
	if err := os.MkdirAll(filepath.Join(tree, "vztest/1/x86_64"), 0o755); err != nil {
		t.Fatal(err)
	}
	baseURL := upstream + "/${releasever}/"
	files := map[string]string{
		"vztest/config.yaml": `packager: dnf
use_cacher: true
keys:
  - ` + baseURL + `RPM-GPG-KEY-repotest
repos:
  base:
    mirrors:
      - ` + baseURL + `
fixups:
  - machine-id-empty
  - dnf-clean
  - rpmdb-rebuild
sets:
  minimal:
    packages: [vz-filesystem, vz-dash, vz-motd]
    dummies:
      - name: kernel
        version: "99:1.0-vz1"
        provides: [kernel-core, kernel-modules]
`,
		"vztest/1/config.yaml": "releasever: \"1\"\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(tree, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return tree
}

func TestRPMContainers(t *testing.T) {
	if _, err := exec.LookPath("dnf"); err != nil {
		t.Fatal("dnf is not installed (scripts/setup.sh installs it)")
	}
	mirror := repotest.NewRPMMirror(t)
	up := mirror.Up
	// Index files are revalidated on every request: the repository changes
	// within seconds.
	c := repotest.StartCacher(t, bin, "allowed_locations="+strings.TrimPrefix(up.URL(), "http://"), "volatile_ttl=0")
	tree := rpmTree(t, up.URL())
	out := t.TempDir()
	ok(t, "--templates", tree, "create", "cache", rpmTemplate, "--cache-dir", out, "--cacher", c.URL, "--quiet")
	hosts := t.TempDir()
	var roots []string
	for _, n := range []string{"ct1", "ct2", "ct3", "ct4"} {
		root := filepath.Join(hosts, n)
		extract(t, filepath.Join(out, rpmTemplate+".tar.gz"), root)
		roots = append(roots, root)
	}
	root := roots[0]
	if rec, err := os.ReadFile(filepath.Join(root, "etc/vzpkg/packager")); err != nil || !strings.Contains(string(rec), "\npackager=dnf\n") ||
		!strings.Contains(string(rec), "\nreleasever=1\n") {
		t.Errorf("the template does not record its packager: %q %v", rec, err)
	}
	before := packages(t, ok(t, "list", root))
	if before["vz-motd"] != "1.0-1 noarch" || before["kernel"] != "99:1.0-vz1 noarch" || len(before) != 5 {
		t.Fatalf("list of the RPM container: %v", before)
	}

	t.Run("install, check-updates, remove", func(t *testing.T) {
		if stdout := ok(t, "install", root, "vz-extra"); stdout != "installed vz-extra 1.0-1 noarch\n" {
			t.Errorf("install printed %q", stdout)
		}
		if n := c.Misses(t, containing("/vz-extra-1.0-1.noarch.rpm")); n != 1 {
			t.Errorf("pkg-cacher fetched vz-extra upstream %d times, want once", n)
		}
		if _, err := os.Stat(filepath.Join(root, "usr/share/vz-extra/data")); err != nil {
			t.Errorf("vz-extra's file is not in the container: %v", err)
		}
		if pkgs := packages(t, ok(t, "list", root)); pkgs["vz-extra"] != "1.0-1 noarch" || len(pkgs) != 6 {
			t.Errorf("list after install: %v", pkgs)
		}
		if r := vzpkg(t, "check-updates", root); r.code != 0 || r.stdout != "no updates\n" {
			t.Errorf("check-updates: exit %d, printed %q %s; want 0 and \"no updates\"", r.code, r.stdout, r.stderr)
		}
		r := vzpkg(t, "install", root, "vz-no-such-package")
		if r.code != 1 {
			t.Errorf("install of an unknown package: exit %d, want 1", r.code)
		}
		oneLine(t, r.stderr, "install vz-no-such-package", "dnf install", "Unable to find a match: vz-no-such-package")
		if pkgs := packages(t, ok(t, "list", root)); len(pkgs) != 6 {
			t.Errorf("the failed install changed the package list: %v", pkgs)
		}
		if out := ok(t, "remove", root, "vz-extra"); out != "removed vz-extra\n" {
			t.Errorf("remove printed %q", out)
		}
		if pkgs := packages(t, ok(t, "list", root)); len(pkgs) != 5 || pkgs["vz-extra"] != "" {
			t.Errorf("list after remove: %v", pkgs)
		}
		// dnf resolves the whole request first: the known package is not installed either.
		r = vzpkg(t, "install", root, "vz-extra", "vz-no-such-package")
		if r.code != 1 {
			t.Errorf("install of a known and an unknown package: exit %d, want 1", r.code)
		}
		if pkgs := packages(t, ok(t, "list", root)); len(pkgs) != 5 {
			t.Errorf("a failed install of vz-extra and an unknown package changed the package list: %v", pkgs)
		}
		noMounts(t, hosts)
	})

	t.Run("update --all -j 4", func(t *testing.T) {
		mirror.Publish(t, "1", repotest.SystemRPMs(t, "1.1")[3:4])
		r := vzpkg(t, "check-updates", root)
		if r.code != 100 || !strings.Contains(r.stdout, "vz-motd") || !strings.Contains(r.stdout, "1.1-1") {
			t.Errorf("check-updates with vz-motd 1.1 in the repository: exit %d, printed %q %s; want 100 and vz-motd 1.1-1", r.code, r.stdout, r.stderr)
		}
		r = vzpkg(t, "update", "--all", "-j", "4", "--root-dir", hosts)
		if r.code != 0 {
			t.Fatalf("update --all: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if n := strings.Count(r.stderr, "] update "); n != 4 {
			t.Errorf("update --all printed %d progress lines, want 4:\n%s", n, r.stderr)
		}
		for _, root := range roots {
			if got := summary(t, r.stdout)[root]; got != "ok 1 packages changed" {
				t.Errorf("the summary lacks %s:\n%s", root, r.stdout)
			}
			if motd, _ := os.ReadFile(filepath.Join(root, "etc/motd")); string(motd) != "vz-motd 1.1\n" {
				t.Errorf("%s/etc/motd is %q after update --all, want vz-motd 1.1", root, motd)
			}
			if v := packages(t, ok(t, "list", root))["vz-motd"]; v != "1.1-1 noarch" {
				t.Errorf("%s has vz-motd %q, want 1.1-1", root, v)
			}
		}
		// The upstream's count, not the access log's MISS lines: a request
		// that joins the fill another container started is logged MISS too.
		if n := up.CountSuffix("/vz-motd-1.1-1.noarch.rpm"); n != 1 {
			t.Errorf("the upstream served vz-motd 1.1 %d times, want once: pkg-cacher did not share it", n)
		}
		noMounts(t, hosts)
	})

	t.Run("one failing container does not stop the others", func(t *testing.T) {
		// ct2 loses its repository configuration: it fails, the others are checked.
		if err := os.Rename(filepath.Join(roots[1], "etc/yum.repos.d/vzpkg.repo"), filepath.Join(roots[1], "etc/yum.repos.d/vzpkg.repo.off")); err != nil {
			t.Fatal(err)
		}
		r := vzpkg(t, "check-updates", "--all", "-j", "4", "--root-dir", hosts)
		if r.code != 1 {
			t.Errorf("check-updates --all with a broken container: exit %d, want 1", r.code)
		}
		sum := summary(t, r.stdout)
		for i, root := range roots {
			want := "ok no updates"
			if i == 1 {
				want = "FAILED"
			}
			if !strings.HasPrefix(sum[root], want) {
				t.Errorf("summary for %s: %q, want %q", root, sum[root], want)
			}
		}
		noMounts(t, hosts)
	})
}

// summary reads the summary table of a --all run: container → "STATUS DETAIL".
func summary(t *testing.T, out string) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || strings.Join(strings.Fields(lines[0]), " ") != "CONTAINER STATUS DETAIL" {
		t.Fatalf("no summary table:\n%s", out)
	}
	rows := map[string]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) >= 2 {
			rows[f[0]] = strings.Join(f[1:], " ")
		}
	}
	return rows
}
