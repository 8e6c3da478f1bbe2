package templatebuild_test

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"vzpkg2/internal/repotest"
	"vzpkg2/internal/rootfs"
)

// These tests need root, dnf, rpm, createrepo-c and gnupg, not the network:
// they build a template of a small RPM distribution made of the host's own
// binaries (repotest.SystemRPMs), signed and served on loopback, with the
// real vzpkg and pkg-cacher binaries.

const dnfTemplate = "vztest-1-x86_64-minimal"

// startCacherFor starts pkg-cacher allowing the upstream host:port, with
// settings added to its command line.
func startCacherFor(t *testing.T, upstream string, settings ...string) *repotest.Cacher {
	return repotest.StartCacher(t, bin, append([]string{"allowed_locations=" + upstream}, settings...)...)
}

// dnfTree writes a template tree for the repositories at upstream/1/ and
// upstream/2/ (releases 1 and 2, each holding RPM-GPG-KEY-repotest) and
// returns its path.
func dnfTree(t *testing.T, upstream string) string {
	t.Helper()
	tree := t.TempDir()
	for _, v := range []string{"1", "2"} {
		if err := os.MkdirAll(filepath.Join(tree, "vztest", v, "x86_64"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	baseURL := upstream + "/${releasever}/"
	config := `packager: dnf
use_cacher: true
keys:
  - ` + baseURL + `RPM-GPG-KEY-repotest
repos:
  base:
    mirrors:
      - ` + baseURL + `
hooks:
  customize: [_hooks/mark.sh]
fixups:
  - machine-id-empty
  - dnf-clean
  - rpmdb-rebuild
  - logs-truncate
sets:
  minimal:
    packages: [vz-filesystem, vz-dash, vz-motd]
    dummies:
      - name: kernel
        version: "99:1.0-vz1"
        provides: [kernel-core, kernel-modules]
`
	files := map[string]string{
		"vztest/config.yaml":   config,
		"vztest/1/config.yaml": "releasever: \"1\"\n",
		"vztest/2/config.yaml": "releasever: \"2\"\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(tree, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hook := filepath.Join(tree, "vztest/_hooks/mark.sh")
	os.MkdirAll(filepath.Dir(hook), 0o755)
	if err := os.WriteFile(hook, []byte("#!/bin/sh\nread m < \"$1/etc/motd\" && echo \"customized after $m\" > \"$1/etc/vz-hook\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return tree
}

// vzpkgTree runs vzpkg with the template tree tree.
func vzpkgTree(t *testing.T, tree string, args ...string) (string, error) {
	t.Helper()
	return vzpkg(t, append([]string{"--templates", tree}, args...)...)
}

// extract unpacks a template into a new directory.
func extract(t *testing.T, tarball string) string {
	t.Helper()
	root := t.TempDir()
	if out, err := exec.Command("tar", "-xpf", tarball, "-C", root, "--numeric-owner").CombinedOutput(); err != nil {
		t.Fatalf("extract: %v\n%s", err, out)
	}
	return root
}

func TestCreateCacheDnfThroughPkgCacher(t *testing.T) {
	if _, err := exec.LookPath("dnf"); err != nil {
		t.Fatal("dnf is not installed (scripts/setup.sh installs it)")
	}
	mirror := repotest.NewRPMMirror(t)
	up := mirror.Up
	host := strings.TrimPrefix(up.URL(), "http://")
	c := startCacherFor(t, host)
	tree := dnfTree(t, up.URL())

	out1 := t.TempDir()
	stdout, err := vzpkgTree(t, tree, "create", "cache", dnfTemplate, "--cache-dir", out1, "--cacher", c.URL)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(out1, dnfTemplate+".tar.gz")
	if !strings.HasPrefix(stdout, path+": ") {
		t.Errorf("create printed %q, want the template's path first", stdout)
	}
	// The set and vz-libc, which vz-dash needs; the dummy is built locally.
	if n := up.CountSuffix(".rpm"); n != 4 {
		t.Errorf("the first build fetched %d packages upstream, want the 4 of the set\nrequests: %q", n, up.Requests())
	}
	if n := c.Misses(t, isRPM); n != 4 {
		t.Errorf("pkg-cacher fetched %d .rpm files upstream, want 4: the build did not go through it", n)
	}
	root := extract(t, path)

	t.Run("rpm lists the set and the dummy", func(t *testing.T) {
		cmd := exec.Command("rpm", "--root", root, "--dbpath", "/var/lib/rpm", "-qa", "--qf", "%{NAME}\n")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("rpm -qa: %v\n%s", err, out)
		}
		got := strings.Fields(string(out))
		slices.Sort(got)
		want := []string{"gpg-pubkey", "kernel", "vz-dash", "vz-filesystem", "vz-libc", "vz-motd"}
		if !slices.Equal(got, want) {
			t.Errorf("rpm -qa in the template: %q, want %q", got, want)
		}
		manifest, _ := os.ReadFile(filepath.Join(out1, dnfTemplate+".manifest"))
		if !strings.Contains(string(manifest), "kernel 99:1.0-vz1 noarch") || !strings.Contains(string(manifest), "vz-motd 1.0-1 noarch") {
			t.Errorf("the manifest lacks the dummy or the set:\n%s", manifest)
		}
	})

	t.Run("repository files", func(t *testing.T) {
		orig, err := os.ReadFile(filepath.Join(root, "etc/yum.repos.d/vztest.repo.disabled"))
		if err != nil || !strings.Contains(string(orig), "baseurl=http://vztest.invalid/") {
			t.Errorf("the package's own vztest.repo is not kept as vztest.repo.disabled: %q %v", orig, err)
		}
		repos, _ := filepath.Glob(filepath.Join(root, "etc/yum.repos.d/*.repo"))
		if len(repos) != 1 || filepath.Base(repos[0]) != "vzpkg.repo" {
			t.Fatalf("repository files in the template: %q, want vzpkg.repo only", repos)
		}
		data, _ := os.ReadFile(repos[0])
		through := c.URL + host + "/1/"
		if !strings.Contains(string(data), "baseurl="+through+"\n") || !strings.Contains(string(data), "gpgkey="+through+"RPM-GPG-KEY-repotest\n") ||
			!strings.Contains(string(data), "gpgcheck=1\n") {
			t.Errorf("vzpkg.repo does not point at pkg-cacher (%s):\n%s", through, data)
		}
	})

	t.Run("a shell runs in a chroot", func(t *testing.T) {
		out, err := exec.Command("chroot", root, "/bin/sh", "-c", "echo $((6*7)); read m < /etc/motd; echo $m; read p < /etc/vz-motd.post; echo $p").CombinedOutput()
		if err != nil {
			t.Fatalf("chroot sh: %v\n%s", err, out)
		}
		if string(out) != "42\nvz-motd 1.0\npost of 1 ran\n" {
			t.Errorf("the shell printed %q; want 42, the motd and the %%post scriptlet's mark", out)
		}
		if mark, _ := os.ReadFile(filepath.Join(root, "etc/vz-hook")); string(mark) != "customized after vz-motd 1.0\n" {
			t.Errorf("the customize hook's mark: %q, want it written after the packages were installed", mark)
		}
	})

	t.Run("nothing of the build is left", func(t *testing.T) {
		for _, pat := range []string{"tmp/vzpkg-dnf-*", "var/tmp/vzpkg-dnf-*", "var/cache/dnf/*", "root/.rpmdb", "proc/*", "dev/*"} {
			if m, _ := filepath.Glob(filepath.Join(root, pat)); len(m) > 0 {
				t.Errorf("build leftovers in the template: %q", m)
			}
		}
		if id, err := os.ReadFile(filepath.Join(root, "etc/machine-id")); err != nil || len(id) != 0 {
			t.Errorf("machine-id: %q %v, want empty", id, err)
		}
		if left, _ := os.ReadDir(out1); len(left) != 3 {
			var names []string
			for _, e := range left {
				names = append(names, e.Name())
			}
			t.Errorf("the cache directory holds %q, want the template, its checksum and manifest", names)
		}
	})

	t.Run("dnf in the template installs through pkg-cacher", func(t *testing.T) {
		// The template's own repository files, and nothing of the host's.
		priv := t.TempDir()
		os.MkdirAll(filepath.Join(priv, "home"), 0o755)
		os.WriteFile(filepath.Join(priv, "home/.rpmmacros"), []byte("%_dbpath /var/lib/rpm\n"), 0o644)
		os.WriteFile(filepath.Join(priv, "dnf.conf"), []byte("[main]\nplugins=0\n"), 0o644)
		before := up.CountSuffix("/vz-extra-1.0-1.noarch.rpm")
		cmd := exec.Command("dnf", "--config="+filepath.Join(priv, "dnf.conf"), "--installroot="+root, "--releasever=1",
			"--setopt=reposdir="+filepath.Join(root, "etc/yum.repos.d"), "--setopt=varsdir="+priv, "-y", "install", "vz-extra")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(priv, "home"), "LC_ALL=C.UTF-8"}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("dnf install vz-extra in the template: %v\n%s", err, out)
		}
		if _, err := os.Stat(filepath.Join(root, "usr/share/vz-extra/data")); err != nil {
			t.Errorf("vz-extra is not installed: %v", err)
		}
		if n := up.CountSuffix("/vz-extra-1.0-1.noarch.rpm") - before; n != 1 || c.Misses(t, isRPM) != 5 {
			t.Errorf("vz-extra came upstream %d times, pkg-cacher missed %d .rpm: want once, through pkg-cacher", n, c.Misses(t, isRPM))
		}
	})

	t.Run("the same file name in another release", func(t *testing.T) {
		// Release 2 has a vz-motd of the same name, version and file name
		// as release 1's, with other content: pkg-cacher must not serve
		// the one it cached for release 1.
		rpms := repotest.SystemRPMs(t, "1.0")
		rpms[3].Text["/etc/motd"] = "vz-motd 1.0 of release 2\n"
		mirror.Publish(t, "2", rpms)
		out := t.TempDir()
		const name = "vztest-2-x86_64-minimal"
		if _, err := vzpkgTree(t, tree, "create", "cache", name, "--cache-dir", out, "--cacher", c.URL, "--quiet"); err != nil {
			t.Fatal(err)
		}
		root := extract(t, filepath.Join(out, name+".tar.gz"))
		if motd, _ := os.ReadFile(filepath.Join(root, "etc/motd")); string(motd) != "vz-motd 1.0 of release 2\n" {
			t.Errorf("/etc/motd of the release 2 template: %q", motd)
		}
	})

	t.Run("second build makes no upstream package request and the same bytes", func(t *testing.T) {
		before := up.CountSuffix(".rpm")
		out2 := t.TempDir()
		if _, err := vzpkgTree(t, tree, "create", "cache", dnfTemplate, "--cache-dir", out2, "--cacher", c.URL, "--quiet"); err != nil {
			t.Fatal(err)
		}
		if n := up.CountSuffix(".rpm") - before; n != 0 {
			t.Errorf("the second build fetched %d packages upstream, want 0", n)
		}
		a, _ := os.ReadFile(path)
		b, _ := os.ReadFile(filepath.Join(out2, dnfTemplate+".tar.gz"))
		if !bytes.Equal(a, b) {
			t.Errorf("two builds with SOURCE_DATE_EPOCH=%s differ (%d and %d bytes)", epoch, len(a), len(b))
		}
		if mounts, _ := rootfs.MountsUnder(out2); len(mounts) != 0 {
			t.Errorf("the build left mounts: %v", mounts)
		}
	})
}

// TestUpdateCacheDnf updates a dnf template: unchanged while the
// repository is, repacked with the diff and the previous file kept as -old
// when the repository gains a newer vz-motd.
func TestUpdateCacheDnf(t *testing.T) {
	mirror := repotest.NewRPMMirror(t)
	up := mirror.Up
	// Index files are revalidated on every request: the repository changes
	// within seconds.
	c := startCacherFor(t, strings.TrimPrefix(up.URL(), "http://"), "volatile_ttl=0")
	tree := dnfTree(t, up.URL())
	out := t.TempDir()
	if _, err := vzpkgTree(t, tree, "create", "cache", dnfTemplate, "--cache-dir", out, "--cacher", c.URL, "--quiet"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(out, dnfTemplate+".tar.gz")
	before, _ := os.Stat(path)
	stdout, err := vzpkgTree(t, tree, "update", "cache", dnfTemplate, "--cache-dir", out, "--cacher", c.URL)
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(path); !strings.Contains(stdout, "is up to date") || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("update of an unchanged template repacked it: %q", stdout)
	}
	if _, err := os.Stat(path + "-old"); err == nil {
		t.Error("an unchanged update left a -old file")
	}

	mirror.Publish(t, "1", repotest.SystemRPMs(t, "1.1")[3:4])
	stdout, err = vzpkgTree(t, tree, "update", "cache", dnfTemplate, "--cache-dir", out, "--cacher", c.URL)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "~ vz-motd 1.0-1 -> 1.1-1") {
		t.Errorf("update did not print the upgrade of vz-motd:\n%s", stdout)
	}
	if _, err := os.Stat(path + "-old"); err != nil {
		t.Errorf("the previous template was not kept: %v", err)
	}
	root := extract(t, path)
	if motd, _ := os.ReadFile(filepath.Join(root, "etc/motd")); string(motd) != "vz-motd 1.1\n" {
		t.Errorf("/etc/motd of the updated template: %q", motd)
	}
	if repos, _ := filepath.Glob(filepath.Join(root, "etc/yum.repos.d/*")); len(repos) != 2 {
		t.Errorf("repository files after the update: %q, want vzpkg.repo and vztest.repo.disabled", repos)
	}
}

// TestBatchCreateAndUpdate runs create cache with a template that builds
// and one that cannot, then update cache --all: the batch goes on past the
// failure, summarises, and exits non-zero only when a template failed.
func TestBatchCreateAndUpdate(t *testing.T) {
	up := repotest.NewRPMMirror(t).Up
	c := startCacherFor(t, strings.TrimPrefix(up.URL(), "http://"))
	tree := dnfTree(t, up.URL())
	// A second template, from a set of its own naming a package the
	// repository does not have.
	cfg := filepath.Join(tree, "vztest/1/config.yaml")
	data, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, append(data, []byte("sets:\n  broken:\n    packages: [vz-no-such-package]\n")...), 0o644)
	out := t.TempDir()
	stdout, err := vzpkgTree(t, tree, "create", "cache", "vztest-1-x86_64-broken", dnfTemplate, "--cache-dir", out, "--cacher", c.URL, "--quiet")
	if err == nil || !strings.Contains(err.Error(), "vzpkg: vztest-1-x86_64-broken: ") {
		t.Errorf("a batch with a failing template: %v, want an error naming it", err)
	}
	if !strings.Contains(stdout, "1 of 2 templates done; failed: vztest-1-x86_64-broken\n") {
		t.Errorf("the batch's summary:\n%s", stdout)
	}
	if _, ok := findFile(out, dnfTemplate+".tar.gz"); !ok {
		t.Errorf("the template after the failed one was not built")
	}
	stdout, err = vzpkgTree(t, tree, "update", "cache", "--all", "--cache-dir", out, "--cacher", c.URL, "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, dnfTemplate+".tar.gz is up to date") || !strings.HasSuffix(stdout, "1 of 1 templates done\n") {
		t.Errorf("update cache --all printed:\n%s", stdout)
	}
}

func findFile(dir, name string) (string, bool) {
	p := filepath.Join(dir, name)
	_, err := os.Stat(p)
	return p, err == nil
}

// TestInterruptedDnfBuildLeavesNothing stops vzpkg with SIGTERM while dnf
// downloads into the root (the API file systems mounted in it): the cache
// directory must be left empty and nothing mounted.
func TestInterruptedDnfBuildLeavesNothing(t *testing.T) {
	up := repotest.NewRPMMirror(t).Up
	stalled, release := make(chan struct{}, 1), make(chan struct{})
	defer close(release)
	up.SetHandler(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if strings.HasSuffix(r.URL.Path, ".rpm") {
			select {
			case stalled <- struct{}{}:
			default:
			}
			<-release
		}
		next.ServeHTTP(w, r)
	})
	c := startCacherFor(t, strings.TrimPrefix(up.URL(), "http://"))
	tree := dnfTree(t, up.URL())
	out := t.TempDir()
	cmd := exec.Command(filepath.Join(bin, "vzpkg"), "--templates", tree, "create", "cache", dnfTemplate, "--cache-dir", out, "--cacher", c.URL, "--quiet")
	tmp := t.TempDir() // where the build's private dnf directory goes
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stalled:
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Fatal("dnf did not ask for a package within a minute")
	}
	stopBuild(t, cmd, syscall.SIGTERM, 2*time.Minute)
	leftNothing(t, out)
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("the interrupted build left %v in TMPDIR", left)
	}
}

// isRPM matches the URLs of .rpm packages.
func isRPM(url string) bool { return strings.HasSuffix(url, ".rpm") }

// TestCreateCacheAlmaLinux9FromMirrorsNetwork builds the shipped
// almalinux-9-x86_64-minimal from the real mirrors through pkg-cacher, when
// they answer; otherwise it is skipped, saying so. (Needs root, the
// network and minutes.)
func TestCreateCacheAlmaLinux9FromMirrorsNetwork(t *testing.T) {
	const name = "almalinux-9-x86_64-minimal"
	const probe = "https://repo.almalinux.org/almalinux/9/BaseOS/x86_64/os/repodata/repomd.xml"
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Head(probe)
	if err != nil {
		t.Skipf("skipped: mirrors not reachable (%v)", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Skipf("skipped: mirrors not reachable (%s answers %s)", probe, resp.Status)
	}
	c := repotest.StartCacher(t, bin)
	out := t.TempDir()
	if _, err := vzpkg(t, "create", "cache", name, "--cache-dir", out, "--cacher", c.URL, "--quiet"); err != nil {
		t.Fatal(err)
	}
	root := extract(t, filepath.Join(out, name+".tar.gz"))
	m, err := rootfs.MountAPI(root)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmount()
	// The template's own rpm reads the database the build left.
	got, err := rootfs.Command(t.Context(), root, nil, "rpm", "-q", "--qf", "%{NAME}\n", "bash", "dnf", "kernel", "almalinux-release").CombinedOutput()
	if err != nil || string(got) != "bash\ndnf\nkernel\nalmalinux-release\n" {
		t.Errorf("rpm -q in the template: %v\n%s", err, got)
	}
	if repos, _ := filepath.Glob(filepath.Join(root, "etc/yum.repos.d/*.repo")); len(repos) != 1 || filepath.Base(repos[0]) != "vzpkg.repo" {
		t.Errorf("repository files: %q, want vzpkg.repo only", repos)
	}
}
