package templatebuild_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"vzpkg2/internal/repotest"
	"vzpkg2/internal/rootfs"
)

// These tests need root, the network to reach deb.debian.org, and minutes:
// they build debian-12-x86_64-minimal with the real vzpkg and pkg-cacher
// binaries, mmdebstrap, apt-get and chroot.

const (
	template = "debian-12-x86_64-minimal"
	epoch    = "1700000000"
)

var bin string // directory holding the vzpkg and pkg-cacher binaries built for the tests

func TestMain(m *testing.M) { repotest.RunWithBinaries(m, &bin) }

// isDeb matches the URLs of .deb packages.
func isDeb(url string) bool { return strings.HasSuffix(url, ".deb") }

// vzpkg runs the vzpkg binary and returns its standard output.
func vzpkg(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "vzpkg"), append([]string{"--templates", "../../templates"}, args...)...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+epoch)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("vzpkg %s: %w\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), err
}

// tarball reads the entries and selected file contents of a .tar.gz.
type tarball struct {
	headers map[string]*tar.Header
	files   map[string]string
}

// withSymlink copies the gzip'ed tarball src to dst with one more entry:
// the symbolic link name pointing at target.
func withSymlink(t *testing.T, src, dst, name, target string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	zw := gzip.NewWriter(out)
	tr, tw := tar.NewReader(zr), tar.NewWriter(zw)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(tw.Close(), zw.Close(), out.Close()); err != nil {
		t.Fatal(err)
	}
}

func readTarball(t *testing.T, path string, want ...string) *tarball {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(bufio.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	tb := &tarball{headers: map[string]*tar.Header{}, files: map[string]string{}}
	tr := tar.NewReader(z)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		tb.headers[h.Name] = h
		for _, w := range want {
			if h.Name == w {
				data, _ := io.ReadAll(tr)
				tb.files[w] = string(data)
			}
		}
	}
	return tb
}

// excludesFile is the dpkg configuration a slim template carries.
const excludesFile = "etc/dpkg/dpkg.cfg.d/excludes"

// checkSlim checks that a template built from the minimal set is slim: its
// dpkg excludes file is there and the paths it names are not, but for the
// copyright files; tb must hold the excludes file's contents.
func checkSlim(t *testing.T, tb *tarball) {
	t.Helper()
	if ex := tb.files["./"+excludesFile]; !strings.Contains(ex, "path-exclude=/usr/share/doc/*\n") || !strings.Contains(ex, "path-include=/usr/share/doc/*/copyright\n") {
		t.Errorf("/%s is missing or incomplete:\n%s", excludesFile, ex)
	}
	copyrights := 0
	for name, h := range tb.headers {
		if h.Typeflag == tar.TypeDir {
			continue
		}
		rest, inDoc := strings.CutPrefix(name, "./usr/share/doc/")
		switch {
		case inDoc && strings.HasSuffix(rest, "/copyright"):
			copyrights++
		case inDoc && h.Typeflag == tar.TypeReg:
			t.Errorf("%s in a slim template (only copyright files stay in /usr/share/doc)", name)
		case strings.HasPrefix(name, "./usr/share/man/"), strings.HasPrefix(name, "./usr/share/info/"),
			strings.HasPrefix(name, "./usr/share/locale/") && name != "./usr/share/locale/locale.alias":
			t.Errorf("%s in a slim template", name)
		}
	}
	// libc6 and bash are unpacked before dpkg runs: their leftovers are removed too.
	for _, p := range []string{"libc6", "bash", "apt", "systemd"} {
		if tb.headers["./usr/share/doc/"+p+"/copyright"] == nil {
			t.Errorf("/usr/share/doc/%s/copyright is missing", p)
		}
	}
	if copyrights < 80 {
		t.Errorf("%d copyright files in /usr/share/doc, want one for most of the 120 packages", copyrights)
	}
}

func TestCreateCacheDebian12ThroughPkgCacher(t *testing.T) {
	c := repotest.StartCacher(t, bin)
	out1 := t.TempDir()
	stdout, err := vzpkg(t, "create", "cache", template, "--cache-dir", out1, "--cacher", c.URL)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(out1, template+".tar.gz")
	if !strings.HasPrefix(stdout, path+": ") {
		t.Errorf("create printed %q, want the template's path first", stdout)
	}
	if n := c.Misses(t, isDeb); n < 50 {
		t.Fatalf("first build fetched %d .deb files through pkg-cacher; the build did not go through it", n)
	}

	t.Run("contents", func(t *testing.T) {
		tb := readTarball(t, path, "./etc/debian_version", "./etc/apt/sources.list", "./etc/apt/sources.list.disabled", "./var/lib/dpkg/status", "./etc/machine-id", "./"+excludesFile)
		checkSlim(t, tb)
		for _, name := range []string{"./", "./etc/", "./usr/", "./usr/bin/", "./etc/passwd", "./usr/bin/apt-get"} {
			if h := tb.headers[name]; h == nil || h.Uid != 0 || h.Gid != 0 || h.Uname != "" {
				t.Errorf("%s: want root-owned with numeric owners, got %+v", name, h)
			}
		}
		if v := tb.files["./etc/debian_version"]; !strings.HasPrefix(v, "12.") {
			t.Errorf("/etc/debian_version = %q, want 12.x", v)
		}
		host := strings.TrimPrefix(strings.TrimSuffix(c.URL, "/"), "http://")
		if s := tb.files["./etc/apt/sources.list"]; !strings.Contains(s, "deb http://"+host+"/deb.debian.org/debian bookworm main") ||
			!strings.Contains(s, "http://"+host+"/security.debian.org/debian-security bookworm-security main") || strings.Contains(s, "deb http://deb.debian.org") {
			t.Errorf("sources.list does not point at pkg-cacher:\n%s", s)
		}
		if s := tb.files["./etc/apt/sources.list.disabled"]; !strings.Contains(s, "http://deb.debian.org/debian bookworm") {
			t.Errorf("the original sources are not kept as sources.list.disabled:\n%s", s)
		}
		status := tb.files["./var/lib/dpkg/status"]
		for _, d := range []string{"udev", "initramfs-tools", "linux-image-amd64"} {
			if !strings.Contains(status, "Package: "+d+"\nStatus: install ok installed") {
				t.Errorf("dummy %s is not installed", d)
			}
		}
		if !strings.Contains(status, "Version: 99:1.0-vz1") {
			t.Error("no dummy package version in the dpkg status")
		}
		// mmdebstrap's merged-usr hook installs a stand-in; the set's own usr-is-merged replaces it.
		if i := strings.Index(status, "Package: usr-is-merged\n"); i < 0 || !strings.Contains(strings.SplitN(status[i:], "\n\n", 2)[0], "\nSource: usrmerge\n") {
			t.Error("usr-is-merged is not Debian's package (Source: usrmerge)")
		}
		if tb.files["./etc/machine-id"] != "" {
			t.Errorf("machine-id is %q, want empty", tb.files["./etc/machine-id"])
		}
		for name, h := range tb.headers {
			switch {
			case strings.HasPrefix(name, "./etc/ssh/ssh_host_"):
				t.Errorf("SSH host key %s in the template", name)
			case name == "./usr/sbin/policy-rc.d", name == "./etc/apt/apt.conf.d/99mmdebstrap":
				t.Errorf("build leftover %s in the template", name)
			case strings.HasPrefix(name, "./var/cache/apt/archives/") && strings.HasSuffix(name, ".deb"),
				strings.HasPrefix(name, "./var/lib/apt/lists/") && strings.HasSuffix(name, "_Packages"):
				t.Errorf("apt cache %s in the template", name)
			case h.ModTime.Unix() > 1700000000:
				t.Errorf("%s has mtime %v after SOURCE_DATE_EPOCH", name, h.ModTime)
			}
		}
	})

	t.Run("chroot apt-get through pkg-cacher", func(t *testing.T) {
		root := t.TempDir()
		if out, err := exec.Command("tar", "-xpf", path, "-C", root, "--numeric-owner", "--xattrs", "--xattrs-include=*").CombinedOutput(); err != nil {
			t.Fatalf("extract: %v\n%s", err, out)
		}
		m, err := rootfs.MountAPI(root)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Unmount()
		for _, args := range [][]string{{"apt-get", "update"}, {"apt-get", "install", "-y", "hello"}, {"hello"}} {
			out, err := exec.Command("chroot", append([]string{root}, args...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("chroot %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			if args[0] == "hello" && !strings.Contains(string(out), "Hello, world!") {
				t.Errorf("hello printed %q", out)
			}
		}
		// The template's excludes file keeps what a container installs slim.
		if _, err := os.Stat(filepath.Join(root, "usr/share/doc/hello/copyright")); err != nil {
			t.Errorf("hello installed in the container has no copyright file: %v", err)
		}
		for _, p := range []string{"usr/share/man/man1/hello.1.gz", "usr/share/info/hello.info.gz", "usr/share/locale/de/LC_MESSAGES/hello.mo", "usr/share/doc/hello/NEWS.gz"} {
			if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
				t.Errorf("hello installed in the container brought /%s, which the template excludes", p)
			}
		}
	})

	// The first build ran under umask 022, the second runs under 077, into
	// a cache directory it creates.
	t.Run("second build from the cache, under umask 077, is byte-identical", func(t *testing.T) {
		out2 := filepath.Join(t.TempDir(), "cache")
		missesBefore := c.Misses(t, isDeb)
		oldMask := syscall.Umask(0o077)
		_, err := vzpkg(t, "create", "cache", template, "--cache-dir", out2, "--cacher", c.URL, "--quiet")
		syscall.Umask(oldMask)
		if err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(out2); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("cache directory made under umask 077: %v, want mode 0755 (%v)", fi.Mode(), err)
		}
		for _, n := range []string{template + ".tar.gz", template + ".tar.gz.sha256", template + ".manifest"} {
			if fi, err := os.Stat(filepath.Join(out2, n)); err != nil || fi.Mode().Perm() != 0o644 {
				t.Errorf("%s published under umask 077: %v, want mode 0644 (%v)", n, fi.Mode(), err)
			}
		}
		if n := c.Misses(t, isDeb) - missesBefore; n != 0 {
			t.Errorf("second build fetched %d .deb files upstream, want 0", n)
		}
		a, _ := os.ReadFile(path)
		b, _ := os.ReadFile(filepath.Join(out2, template+".tar.gz"))
		if !bytes.Equal(a, b) {
			t.Errorf("two builds with SOURCE_DATE_EPOCH=%s differ (%d and %d bytes)", epoch, len(a), len(b))
		}
	})

	t.Run("update cache", func(t *testing.T) {
		before, _ := os.Stat(path)
		stdout, err := vzpkg(t, "update", "cache", template, "--cache-dir", out1, "--cacher", c.URL)
		if err != nil {
			t.Fatal(err)
		}
		after, _ := os.Stat(path)
		if !strings.Contains(stdout, "is up to date") || !after.ModTime().Equal(before.ModTime()) {
			t.Errorf("update of an unchanged template repacked it: %q", stdout)
		}
		if _, err := os.Stat(path + "-old"); err == nil {
			t.Error("an unchanged update left a -old file")
		}

		// A local tree adds a package to the set: the update installs it and repacks.
		local := t.TempDir()
		os.MkdirAll(filepath.Join(local, "debian/12"), 0o755)
		os.WriteFile(filepath.Join(local, "debian/12/config.yaml"), []byte("sets:\n  minimal:\n    packages: [hello]\n"), 0o644)
		stdout, err = vzpkg(t, "--templates", local+":../../templates", "update", "cache", template, "--cache-dir", out1, "--cacher", c.URL)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(stdout, "+ hello ") {
			t.Errorf("update did not print the added package:\n%s", stdout)
		}
		if _, err := os.Stat(path + "-old"); err != nil {
			t.Errorf("the previous template was not kept: %v", err)
		}
		tb := readTarball(t, path, "./var/lib/dpkg/status", "./"+excludesFile)
		if !strings.Contains(tb.files["./var/lib/dpkg/status"], "Package: hello\nStatus: install ok installed") {
			t.Error("the updated template does not have hello installed")
		}
		checkSlim(t, tb)
		if tb.headers["./usr/share/doc/hello/copyright"] == nil || tb.headers["./usr/share/man/man1/hello.1.gz"] != nil {
			t.Error("hello installed by the update is not slim: want its copyright file and no manual page")
		}
		if manifest, _ := os.ReadFile(filepath.Join(out1, template+".manifest")); !bytes.Contains(manifest, []byte("\nhello ")) {
			t.Error("the manifest does not list hello")
		}
	})

	t.Run("update cache writes nothing through a link in the template", func(t *testing.T) {
		// The template's own update list is a link to a file outside it: the
		// update must write its list in the template, not into that file.
		outside := filepath.Join(t.TempDir(), "outside.list")
		const own = "the host's own file\n"
		if err := os.WriteFile(outside, []byte(own), 0o644); err != nil {
			t.Fatal(err)
		}
		out := t.TempDir()
		withSymlink(t, path, filepath.Join(out, template+".tar.gz"), "./var/lib/vzpkg-update.list", outside)
		// Published as a build publishes it (update checks both): a hostile
		// template comes with a valid checksum and manifest.
		tarball, err := os.ReadFile(filepath.Join(out, template+".tar.gz"))
		if err != nil {
			t.Fatal(err)
		}
		manifest, err := os.ReadFile(filepath.Join(out1, template+".manifest"))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(out, template+".tar.gz.sha256"), fmt.Appendf(nil, "%x  %s.tar.gz\n", sha256.Sum256(tarball), template), 0o644)
		os.WriteFile(filepath.Join(out, template+".manifest"), manifest, 0o644)
		if _, err := vzpkg(t, "update", "cache", template, "--cache-dir", out, "--cacher", c.URL); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(outside); string(got) != own {
			t.Errorf("update cache wrote through the template's link to %s: it holds %q", outside, got)
		}
	})

	t.Run("debootstrap", func(t *testing.T) {
		local := t.TempDir()
		os.MkdirAll(filepath.Join(local, "debian"), 0o755)
		os.WriteFile(filepath.Join(local, "debian/config.yaml"), []byte("bootstrap: debootstrap\n"), 0o644)
		out := t.TempDir()
		if _, err := vzpkg(t, "--templates", local+":../../templates", "create", "cache", template, "--cache-dir", out, "--cacher", c.URL, "--quiet"); err != nil {
			t.Fatal(err)
		}
		tb := readTarball(t, filepath.Join(out, template+".tar.gz"), "./etc/debian_version", "./var/lib/dpkg/status", "./etc/apt/sources.list.disabled", "./etc/apt/sources.list", "./"+excludesFile)
		checkSlim(t, tb)
		if !strings.HasPrefix(tb.files["./etc/debian_version"], "12.") {
			t.Errorf("/etc/debian_version = %q", tb.files["./etc/debian_version"])
		}
		status := tb.files["./var/lib/dpkg/status"]
		for _, p := range []string{"udev", "systemd-sysv", "iproute2"} {
			if !strings.Contains(status, "Package: "+p+"\nStatus: install ok installed") {
				t.Errorf("%s is not installed", p)
			}
		}
		if s := tb.files["./etc/apt/sources.list.disabled"]; !strings.Contains(s, "security.debian.org/debian-security bookworm-security") {
			t.Errorf("the original sources lack the security repository:\n%s", s)
		}
		if !strings.Contains(tb.files["./etc/apt/sources.list"], c.URL[len("http://"):]) {
			t.Errorf("sources.list does not point at pkg-cacher:\n%s", tb.files["./etc/apt/sources.list"])
		}
	})

	t.Run("interrupted build leaves nothing", func(t *testing.T) {
		out3 := t.TempDir()
		cmd := exec.Command(filepath.Join(bin, "vzpkg"), "--templates", "../../templates", "create", "cache", template, "--cache-dir", out3, "--cacher", c.URL)
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Stop it while mmdebstrap has the root's /dev and /proc mounted.
		sc := bufio.NewScanner(stderr)
		for sc.Scan() && !strings.Contains(sc.Text(), "installing essential packages") {
		}
		go io.Copy(io.Discard, stderr)
		stopBuild(t, cmd, syscall.SIGTERM, 3*time.Minute)
		leftNothing(t, out3)
	})

	t.Run("two runs on one template", func(t *testing.T) {
		out6 := t.TempDir()
		local := t.TempDir()
		os.MkdirAll(filepath.Join(local, "debian/12"), 0o755)
		os.WriteFile(filepath.Join(local, "debian/12/config.yaml"), []byte("sets:\n  minimal:\n    packages: [cowsay]\n"), 0o644)
		start := func(templates string, args ...string) (*exec.Cmd, string) {
			logPath := filepath.Join(t.TempDir(), "stderr")
			logFile, _ := os.Create(logPath)
			defer logFile.Close()
			cmd := exec.Command(filepath.Join(bin, "vzpkg"), append([]string{"--templates", templates}, args...)...)
			cmd.Stdout, cmd.Stderr = logFile, logFile
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			return cmd, logPath
		}
		waitFor := func(logPath, want string) bool {
			for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				if log, _ := os.ReadFile(logPath); strings.Contains(string(log), want) {
					return true
				}
			}
			return false
		}
		// The create builds the shipped set, the update adds cowsay.
		create, createLog := start("../../templates", "create", "cache", template, "--cache-dir", out6, "--cacher", c.URL)
		if !waitFor(createLog, "installing essential packages") {
			t.Fatal("create never reached the bootstrap")
		}
		update, updateLog := start(local+":../../templates", "update", "cache", template, "--cache-dir", out6, "--cacher", c.URL)
		if !waitFor(updateLog, "waiting for another vzpkg run (pid ") {
			log, _ := os.ReadFile(updateLog)
			t.Errorf("update during a create did not say that it waits:\n%s", log)
		}
		if err := create.Wait(); err != nil {
			log, _ := os.ReadFile(createLog)
			t.Fatalf("create: %v\n%s", err, log)
		}
		if log, _ := os.ReadFile(updateLog); !strings.Contains(string(log), fmt.Sprintf("waiting for another vzpkg run (pid %d)", create.Process.Pid)) {
			t.Errorf("the waiting update did not name the create's process %d:\n%s", create.Process.Pid, log)
		}
		if !waitFor(updateLog, "] unpack") {
			t.Fatal("the update did not go on after the create")
		}
		if _, err := vzpkg(t, "remove", "cache", template, "--cache-dir", out6, "--no-wait"); err == nil || !strings.Contains(err.Error(), "another vzpkg run (pid ") {
			t.Errorf("remove --no-wait during an update: got %v, want it to fail at once naming the other run", err)
		}
		if err := update.Wait(); err != nil {
			log, _ := os.ReadFile(updateLog)
			t.Fatalf("update: %v\n%s", err, log)
		}
		checkPublished(t, out6, "after a create and an update at once")
		if manifest, _ := os.ReadFile(filepath.Join(out6, template+".manifest")); !bytes.Contains(manifest, []byte("\ncowsay ")) {
			t.Error("the update that waited for the create did not publish its result")
		}
		if _, err := os.Stat(filepath.Join(out6, template+".tar.gz-old")); err != nil {
			t.Errorf("the create's template is not the -old of the update's: %v", err)
		}
	})

	t.Run("interrupt during a customize hook", func(t *testing.T) {
		local := t.TempDir()
		os.MkdirAll(filepath.Join(local, "debian/12/_hooks"), 0o755)
		os.WriteFile(filepath.Join(local, "debian/12/config.yaml"), []byte("hooks:\n  customize: [_hooks/slow.sh]\n"), 0o644)
		os.WriteFile(filepath.Join(local, "debian/12/_hooks/slow.sh"), []byte("#!/bin/sh\necho vzpkg-test-hook-runs\nsleep 120 &\nsleep 120\n"), 0o755)
		out5 := t.TempDir()
		cmd := exec.Command(filepath.Join(bin, "vzpkg"), "--templates", local+":../../templates", "create", "cache", template, "--cache-dir", out5, "--cacher", c.URL, "--verbose")
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stderr)
		reached := false
		for !reached && sc.Scan() {
			reached = strings.Contains(sc.Text(), "vzpkg-test-hook-runs")
		}
		if !reached {
			t.Fatal("the customize hook never ran")
		}
		go io.Copy(io.Discard, stderr)
		if d := stopBuild(t, cmd, syscall.SIGINT, 3*time.Minute); d > 20*time.Second {
			t.Errorf("vzpkg took %v to stop after SIGINT in a hook, want < 20 s", d.Round(time.Second))
		}
		if left := buildProcesses(out5); len(left) > 0 {
			t.Errorf("processes of the build outlive it: %v", left)
		}
		if left, _ := os.ReadDir(out5); len(left) != 0 {
			t.Errorf("interrupted build left %v in the cache directory", left)
		}
	})

	// SIGKILL skips every cleanup of vzpkg's own: the kernel must do it.
	t.Run("killed build leaves no process and no mount", func(t *testing.T) {
		out4 := t.TempDir()
		for _, n := range []string{".tar.gz", ".tar.gz.sha256", ".manifest"} {
			data, err := os.ReadFile(filepath.Join(out1, template+n))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(out4, template+n), data, 0o644)
		}
		local := t.TempDir()
		os.MkdirAll(filepath.Join(local, "debian/12"), 0o755)
		os.WriteFile(filepath.Join(local, "debian/12/config.yaml"), []byte("sets:\n  minimal:\n    packages: [cowsay]\n"), 0o644)
		for _, tc := range []struct{ cmd, phase string }{
			{"create", "] dummy packages"},
			{"create", "installing essential packages"},
			{"create", "] fixups"},
			{"create", "] pack"},
			{"create", "] publish"},
			{"update", "] update"},
		} {
			// Its output goes to a file, as to a terminal: a pipe closing
			// with vzpkg would kill what writes to it by SIGPIPE.
			logPath := filepath.Join(t.TempDir(), "stderr")
			logFile, err := os.Create(logPath)
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(filepath.Join(bin, "vzpkg"), "--templates", local+":../../templates", tc.cmd, "cache", template, "--cache-dir", out4, "--cacher", c.URL)
			cmd.Stdout, cmd.Stderr = logFile, logFile
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			logFile.Close()
			exited := make(chan struct{})
			go func() { cmd.Wait(); close(exited) }()
			reached := false
			for deadline := time.Now().Add(5 * time.Minute); !reached && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				log, _ := os.ReadFile(logPath)
				reached = strings.Contains(string(log), tc.phase)
				select {
				case <-exited:
					deadline = time.Time{}
				default:
				}
			}
			cmd.Process.Kill()
			<-exited
			if !reached {
				t.Errorf("%s cache never printed %q", tc.cmd, tc.phase)
			}
			what := tc.cmd + " killed at " + strings.TrimPrefix(tc.phase, "] ")
			// The kernel tears the namespaces down as the last process
			// exits, which takes a moment with a root of many files on a
			// tmpfs: a few seconds, not forever.
			var left, mounts []string
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				left, mounts = buildProcesses(out4), mountsUnder(out4)
				if len(left)+len(mounts) == 0 || time.Now().After(deadline) {
					break
				}
			}
			if len(left) > 0 {
				t.Errorf("%s: processes of the build still run 5 s later: %v", what, left)
			}
			if len(mounts) > 0 {
				t.Errorf("%s: mounts of the build are left 5 s later: %v", what, mounts)
			}
			checkPublished(t, out4, what)
		}
		if _, err := vzpkg(t, "create", "cache", template, "--cache-dir", out4, "--cacher", c.URL, "--quiet"); err != nil {
			t.Fatal(err)
		}
		checkPublished(t, out4, "the next build")
		entries, _ := os.ReadDir(out4)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				t.Errorf("the next build left %s (leftovers of the killed ones are to be removed)", e.Name())
			}
		}
	})

}

// publishedFiles writes a stand-in for a published template into dir and
// returns its file names.
func publishedFiles(t *testing.T, dir string) []string {
	t.Helper()
	names := []string{template + ".tar.gz", template + ".tar.gz.sha256", template + ".manifest"}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(n+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return names
}

// holdLock takes the template's lock in dir as another vzpkg run would, and
// returns the function releasing it.
func holdLock(t *testing.T, dir string) func() {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "."+template+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return func() { f.Close() }
}

// TestOneRunPerTemplate runs the real vzpkg while another run holds the
// template's lock: with --no-wait it fails at once, without it says that it
// waits and does its work only when the other run is done. (No network.)
func TestOneRunPerTemplate(t *testing.T) {
	dir := t.TempDir()
	names := publishedFiles(t, dir)
	release := holdLock(t, dir)
	defer release()
	stillThere := func(when string) {
		t.Helper()
		for _, n := range names {
			if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
				t.Errorf("%s: %v", when, err)
			}
		}
	}

	for _, args := range [][]string{
		{"remove", "cache", template, "--cache-dir", dir, "--no-wait"},
		{"create", "cache", template, "--cache-dir", dir, "--no-cacher", "--no-wait"},
		{"update", "cache", template, "--cache-dir", dir, "--no-cacher", "--no-wait"},
	} {
		start := time.Now()
		_, err := vzpkg(t, args...)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("another vzpkg run (pid %d) is working on %s in %s", os.Getpid(), template, dir)) {
			t.Errorf("%s while another run holds the template: got %v, want \"another vzpkg run (pid %d) is working on ...\"", strings.Join(args[:2], " "), err, os.Getpid())
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s --no-wait took %v, want it to fail at once", strings.Join(args[:2], " "), d)
		}
		stillThere(strings.Join(args[:2], " ") + " --no-wait")
	}

	cmd := exec.Command(filepath.Join(bin, "vzpkg"), "remove", "cache", template, "--cache-dir", dir)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Scan()
		if want := fmt.Sprintf("waiting for another vzpkg run (pid %d)", os.Getpid()); !strings.Contains(sc.Text(), want) {
			t.Errorf("remove cache printed %q first, want %q", sc.Text(), want)
		}
		io.Copy(io.Discard, stderr)
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		t.Fatalf("remove cache did not wait for the other run: exited with %v", err)
	case <-time.After(time.Second):
	}
	stillThere("remove cache waiting for the lock")
	release()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("remove cache after the other run: %v", err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("remove cache did not finish within 10 s of the other run's end")
	}
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			t.Errorf("%s is still there after remove cache", n)
		}
	}
}

// TestHangupAndBrokenPipeInterrupt sends SIGHUP and SIGPIPE to a vzpkg run
// (waiting for another run's lock): each stops it as SIGINT does, through
// its cleanup, instead of killing it on the spot. (No network.)
func TestHangupAndBrokenPipeInterrupt(t *testing.T) {
	dir := t.TempDir()
	publishedFiles(t, dir)
	release := holdLock(t, dir)
	defer release()
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGPIPE} {
		cmd := exec.Command(filepath.Join(bin, "vzpkg"), "remove", "cache", template, "--cache-dir", dir)
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stderr)
		sc.Scan() // "waiting for another vzpkg run ..."
		cmd.Process.Signal(sig)
		var rest strings.Builder
		done := make(chan error, 1)
		go func() {
			for sc.Scan() {
				rest.WriteString(sc.Text() + "\n")
			}
			done <- cmd.Wait()
		}()
		var err error
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("%v while waiting: vzpkg still runs 10 s later", sig)
			continue
		}
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(rest.String(), "interrupted") {
			t.Errorf("%v while waiting: got %v, %q; want exit status 1 and \"interrupted\"", sig, err, rest.String())
		}
	}
}

// buildProcesses lists the processes whose command line, root or working
// directory lies in dir.
func buildProcesses(dir string) []string {
	var found []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cmdline, _ := os.ReadFile(p + "/cmdline")
		stat, _ := os.ReadFile(p + "/stat")
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && bytes.HasPrefix(bytes.TrimSpace(stat[i+1:]), []byte("Z")) {
			continue // a zombie runs nothing
		}
		root, _ := os.Readlink(p + "/root")
		cwd, _ := os.Readlink(p + "/cwd")
		if strings.Contains(string(cmdline), dir) || strings.HasPrefix(root, dir) || strings.HasPrefix(cwd, dir) {
			found = append(found, filepath.Base(p)+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return found
}

// mountsUnder lists the mounts under dir that any process sees.
func mountsUnder(dir string) []string {
	seen := map[string]bool{}
	var found []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range append(procs, "/proc/self") {
		data, _ := os.ReadFile(p + "/mounts")
		for _, l := range strings.Split(string(data), "\n") {
			if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(f[1], dir) && !seen[f[1]] {
				seen[f[1]] = true
				found = append(found, f[1])
			}
		}
	}
	return found
}

// checkPublished checks that the template in dir is one whole set: the
// tarball verifies with sha256sum -c and the manifest lists what the
// tarball's package database lists.
func checkPublished(t *testing.T, dir, what string) {
	t.Helper()
	sum := exec.Command("sha256sum", "-c", template+".tar.gz.sha256")
	sum.Dir = dir
	if out, err := sum.CombinedOutput(); err != nil {
		t.Errorf("%s: sha256sum -c: %v\n%s", what, err, out)
	}
	admin := t.TempDir()
	status, err := exec.Command("tar", "-xOf", filepath.Join(dir, template+".tar.gz"), "./var/lib/dpkg/status").Output()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	os.WriteFile(filepath.Join(admin, "status"), status, 0o644)
	db, err := exec.Command("dpkg-query", "--admindir="+admin, "-W", "-f", "${db:Status-Abbrev}${Package} ${Version} ${Architecture}\n").Output()
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, l := range strings.Split(string(db), "\n") {
		if rest, ok := strings.CutPrefix(l, "ii "); ok {
			want.WriteString(rest + "\n")
		}
	}
	manifest, _ := os.ReadFile(filepath.Join(dir, template+".manifest"))
	if string(manifest) != want.String() {
		t.Errorf("%s: the manifest does not list what the tarball's package database lists", what)
	}
}

// stopBuild sends sig to the vzpkg build cmd and waits up to within for it
// to end, which it must do with a failure; it returns how long it took.
func stopBuild(t *testing.T, cmd *exec.Cmd, sig os.Signal, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	cmd.Process.Signal(sig)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("a build stopped by %v exited 0", sig)
		}
	case <-time.After(within):
		cmd.Process.Kill()
		t.Fatalf("vzpkg did not stop within %v of %v", within, sig)
	}
	return time.Since(start)
}

// leftNothing fails t when an interrupted build left files or mounts in its
// cache directory out.
func leftNothing(t *testing.T, out string) {
	t.Helper()
	if left, _ := os.ReadDir(out); len(left) != 0 {
		t.Errorf("the interrupted build left %v in the cache directory", left)
	}
	if mounts, _ := rootfs.MountsUnder(out); len(mounts) != 0 {
		t.Errorf("the interrupted build left mounts: %v", mounts)
	}
}
