package templatebuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"vzpkg2/internal/tmpl"
)

// These tests run the real publish pipeline (reproducible tar, pigz, the
// apt packager's dpkg-query, sha256sum) on a small root written by the test
// instead of a bootstrapped one: no network, a second each. They need root
// (the build root may go on a tmpfs).

const testName = "vztest-1-x86_64"

func testDef() *tmpl.Definition {
	return &tmpl.Definition{Name: testName, Packager: tmpl.PackagerApt}
}

// testStatus is a dpkg status file listing package vztest at version.
func testStatus(version string) string {
	return "Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4\n\n" +
		"Package: vztest\nStatus: install ok installed\nArchitecture: all\nVersion: " + version + "\n\n"
}

// writeRoot fills a build root with a few files and a package database
// listing vztest at version.
func writeRoot(t *testing.T, root, version string) {
	t.Helper()
	files := map[string]string{
		"etc/passwd":           "root:x:0:0:root:/root:/bin/sh\n",
		"etc/apt/sources.list": "deb http://deb.debian.org/debian bookworm main\n",
		"var/lib/dpkg/status":  testStatus(version),
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fakeCreate is Create with the bootstrap replaced by writeRoot: the lock,
// the private directory, the query of the package database, the pack and
// the publish are the real ones.
func fakeCreate(ctx context.Context, t *testing.T, opt Options, version string) (*Result, error) {
	t.Helper()
	unlock, err := lockTemplate(ctx, testName, opt)
	if err != nil {
		return nil, err
	}
	defer unlock()
	b, err := start(testDef(), opt)
	if err != nil {
		return nil, err
	}
	defer b.cleanup(nil)
	writeRoot(t, b.root, version)
	return b.finish(ctx)
}

// publishedVersion checks that the published set of testName in dir is
// whole and consistent, as a user would check it: exactly one format, the
// tarball and -old verify with sha256sum -c, each manifest lists what the
// package database inside its tarball lists, and nothing else of the
// template is there. It returns the vztest versions of the template and of
// its -old ("" when there is none).
func publishedVersion(t *testing.T, dir string) (cur, old string) {
	t.Helper()
	var tarballs []string
	for _, f := range Formats() {
		if _, err := os.Stat(filepath.Join(dir, testName+".tar."+f)); err == nil {
			tarballs = append(tarballs, testName+".tar."+f)
		}
	}
	if len(tarballs) != 1 {
		t.Fatalf("published tarballs %v, want exactly one; directory holds %v", tarballs, listDir(t, dir))
	}
	tb := tarballs[0]
	want := []string{tb, tb + ".sha256", testName + ".manifest"}
	cur = checkTarball(t, dir, tb, testName+".manifest")
	for _, f := range Formats() {
		o := testName + ".tar." + f + "-old"
		if _, err := os.Stat(filepath.Join(dir, o)); err == nil {
			if old != "" {
				t.Errorf("two -old tarballs in %v", listDir(t, dir))
			}
			old = checkTarball(t, dir, o, testName+".manifest-old")
			want = append(want, o, o+".sha256", testName+".manifest-old")
		}
	}
	got := listDir(t, dir)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("cache directory holds %v, want %v", got, want)
	}
	return cur, old
}

// checkTarball verifies tarball (in dir) against its .sha256 with sha256sum
// and its manifest against its package database, and returns the version
// of vztest in it.
func checkTarball(t *testing.T, dir, tarball, manifest string) string {
	t.Helper()
	cmd := exec.Command("sha256sum", "-c", tarball+".sha256")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c %s.sha256: %v\n%s", tarball, err, out)
	}
	x := t.TempDir()
	unpackArgs := []string{"-xf", filepath.Join(dir, tarball), "-C", x, "./var/lib/dpkg/status"}
	if strings.Contains(tarball, ".zst") {
		unpackArgs = append(unpackArgs, "--zstd")
	}
	if out, err := exec.Command("tar", unpackArgs...).CombinedOutput(); err != nil {
		t.Fatalf("tar %v: %v\n%s", unpackArgs, err, out)
	}
	db, err := exec.Command("dpkg-query", "--admindir="+filepath.Join(x, "var/lib/dpkg"), "-W", "-f", "${Package} ${Version} ${Architecture}\n").Output()
	if err != nil {
		t.Fatal(err)
	}
	m, err := os.ReadFile(filepath.Join(dir, manifest))
	if err != nil {
		t.Fatal(err)
	}
	if string(m) != string(db) {
		t.Errorf("%s lists\n%s\nbut the package database in %s lists\n%s", manifest, m, tarball, db)
	}
	for _, l := range strings.Split(string(db), "\n") {
		if v, ok := strings.CutPrefix(l, "vztest "); ok {
			return strings.Fields(v)[0]
		}
	}
	t.Fatalf("no vztest in %s", tarball)
	return ""
}

// listDir lists the files of dir a user sees, without the lock file.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.Name() != "."+testName+".lock" {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names
}

// TestConcurrentRunsOnOneTemplate runs builds and a remove of one template
// at once, with the publish window widened: every run is serialised by the
// lock, and the result is one whole set.
func TestConcurrentRunsOnOneTemplate(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	slow := func(step string) error { time.Sleep(30 * time.Millisecond); return nil }
	opt := Options{CacheDir: dir, fault: slow, Epoch: time.Unix(1700000000, 0)}
	if _, err := fakeCreate(ctx, t, opt, "1"); err != nil {
		t.Fatal(err)
	}
	// Builds and a remove at once, then two builds at once: the last
	// word is a build's.
	var wg sync.WaitGroup
	build := func(i int) {
		defer wg.Done()
		o := opt
		o.Format = Formats()[i%2*2] // gz and zst
		if _, err := fakeCreate(ctx, t, o, fmt.Sprint(i)); err != nil {
			t.Errorf("build %d: %v", i, err)
		}
	}
	for i := 2; i <= 4; i++ {
		wg.Add(1)
		go build(i)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(50 * time.Millisecond)
		if err := Remove(ctx, testName, opt); err != nil {
			t.Errorf("remove: %v", err)
		}
	}()
	wg.Wait()
	wg.Add(2)
	go build(5)
	go build(6)
	wg.Wait()
	publishedVersion(t, dir)
	if _, err := os.Stat(filepath.Join(dir, "."+testName+".lock")); err == nil {
		t.Error("the lock file is left after every run ended")
	}
}

// TestPublishKilledAtEveryStep stops a publish at each of its steps, as
// SIGKILL would, then lets the next run take the lock: the template is then
// either the whole old set or the whole new one, and the next build works.
func TestPublishKilledAtEveryStep(t *testing.T) {
	killed := errors.New("killed")
	steps := []string{"staged", "committed",
		"moved " + testName + ".tar.gz-old", "moved " + testName + ".tar.gz-old.sha256", "moved " + testName + ".manifest-old",
		"moved " + testName + ".manifest", "moved " + testName + ".tar.zst.sha256", "moved " + testName + ".tar.zst", "replaced"}
	ctx := context.Background()
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			opt := Options{CacheDir: dir}
			for _, v := range []string{"1", "2"} {
				if _, err := fakeCreate(ctx, t, opt, v); err != nil {
					t.Fatal(err)
				}
			}
			reached := false
			o := opt
			o.Format = "zst"
			o.fault = func(s string) error {
				if s == step {
					reached = true
					return killed
				}
				return nil
			}
			if _, err := fakeCreate(ctx, t, o, "3"); !errors.Is(err, killed) || !reached {
				t.Fatalf("publish stopped at %q: %v (step reached: %v)", step, err, reached)
			}
			// The next run: any command that takes the template's lock.
			unlock, err := lockTemplate(ctx, testName, opt)
			if err != nil {
				t.Fatal(err)
			}
			unlock()
			cur, old := publishedVersion(t, dir)
			wantCur, wantOld := "3", "2"
			if step == "staged" {
				wantCur, wantOld = "2", "1"
			}
			if cur != wantCur || old != wantOld {
				t.Errorf("after a kill at %q: template %s with -old %s, want %s with -old %s", step, cur, old, wantCur, wantOld)
			}
			if _, err := fakeCreate(ctx, t, opt, "4"); err != nil {
				t.Fatal(err)
			}
			if cur, old := publishedVersion(t, dir); cur != "4" || old != wantCur {
				t.Errorf("next build: template %s with -old %s, want 4 with -old %s", cur, old, wantCur)
			}
		})
	}
}

// TestNameLimitFitsEveryFile checks tmpl.MaxNameLen against the file names
// a build makes.
func TestNameLimitFitsEveryFile(t *testing.T) {
	name := "d-1-x86_64-" + strings.Repeat("s", tmpl.MaxNameLen-len("d-1-x86_64-"))
	if err := tmpl.CheckName(name); err != nil {
		t.Fatal(err)
	}
	names := append(setNames(name), filepath.Base(commitDir("/", name)), "."+name+".lock", ".vzpkg-"+name+"-4294967295")
	longest := 0
	for _, n := range names {
		longest = max(longest, len(n))
	}
	if longest != 255 {
		t.Errorf("the longest file name of a %d-byte template name is %d bytes, want 255 (tmpl.MaxNameLen is off)", len(name), longest)
	}
	if err := tmpl.CheckName(name + "s"); err == nil {
		t.Errorf("a %d-byte name passes", len(name)+1)
	}
}

// TestUpdateRefusesTamperedTemplate changes a published template's tarball,
// then its manifest: update cache refuses either, naming the file, before
// it changes anything.
func TestUpdateRefusesTamperedTemplate(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		want   []string
	}{
		{
			name: "tarball repacked with another root user",
			tamper: func(t *testing.T, dir string) {
				x := t.TempDir()
				tb := filepath.Join(dir, testName+".tar.gz")
				run := func(args ...string) {
					if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
						t.Fatalf("%v: %v\n%s", args, err, out)
					}
				}
				run("tar", "-xpf", tb, "-C", x)
				f, _ := os.OpenFile(filepath.Join(x, "etc/passwd"), os.O_APPEND|os.O_WRONLY, 0)
				f.WriteString("toor:x:0:0::/root:/bin/sh\n")
				f.Close()
				run("tar", "-czf", tb, "-C", x, ".")
			},
			want: []string{testName + ".tar.gz does not match its checksum in ", testName + ".tar.gz.sha256", "--recreate"},
		},
		{
			name: "checksum file missing",
			tamper: func(t *testing.T, dir string) {
				os.Remove(filepath.Join(dir, testName+".tar.gz.sha256"))
			},
			want: []string{testName + ".tar.gz.sha256", "--recreate"},
		},
		{
			name: "manifest edited",
			tamper: func(t *testing.T, dir string) {
				p := filepath.Join(dir, testName+".manifest")
				m, _ := os.ReadFile(p)
				os.WriteFile(p, []byte(strings.ReplaceAll(string(m), "vztest 1 all\n", "vztest 2 all\n")), 0o644)
			},
			want: []string{testName + ".manifest does not match the package database", "--recreate"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opt := Options{CacheDir: dir}
			if _, err := fakeCreate(ctx, t, opt, "1"); err != nil {
				t.Fatal(err)
			}
			tt.tamper(t, dir)
			before := listDir(t, dir)
			_, err := Update(ctx, testDef(), opt)
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("update of a template with its %s: got error %v, want one containing %q", tt.name, err, w)
				}
			}
			if got := listDir(t, dir); !slices.Equal(got, before) {
				t.Errorf("the refused update changed the cache directory from %v to %v", before, got)
			}
		})
	}
}

// TestBuildIgnoresUmask builds under umask 077 and 022 into cache
// directories that do not exist yet: the tarballs are byte-identical and
// the published files and the directory readable by everyone.
func TestBuildIgnoresUmask(t *testing.T) {
	ctx := context.Background()
	build := func(mask int) []byte {
		old := syscall.Umask(mask)
		defer syscall.Umask(old)
		dir := filepath.Join(t.TempDir(), "cache")
		opt := Options{CacheDir: dir, Epoch: time.Unix(1700000000, 0)}
		if _, err := fakeCreate(ctx, t, opt, "1"); err != nil {
			t.Fatal(err)
		}
		// Update the template, so that there is an -old set too.
		if _, err := fakeCreate(ctx, t, opt, "2"); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("umask %03o: cache directory %v, want mode 0755 (%v)", mask, fi.Mode(), err)
		}
		for _, n := range listDir(t, dir) {
			if fi, err := os.Stat(filepath.Join(dir, n)); err != nil || fi.Mode().Perm() != 0o644 {
				t.Errorf("umask %03o: %s has mode %v, want 0644 (%v)", mask, n, fi.Mode(), err)
			}
		}
		data, err := os.ReadFile(filepath.Join(dir, testName+".tar.gz"))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	a, b := build(0o077), build(0o022)
	if !bytes.Equal(a, b) {
		t.Errorf("builds under umask 077 and 022 differ (%d and %d bytes)", len(a), len(b))
	}
}

// TestFormatChangesKeepOneOld builds gz, zst, then gz again: each time the
// previous build, whatever its format, is the one -old, with its checksum;
// then remove cache leaves nothing of the template in any format.
func TestFormatChangesKeepOneOld(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for i, format := range []string{"gz", "zst", "gz"} {
		v := fmt.Sprint(i + 1)
		if _, err := fakeCreate(ctx, t, Options{CacheDir: dir, Format: format}, v); err != nil {
			t.Fatal(err)
		}
		cur, old := publishedVersion(t, dir)
		if wantOld := fmt.Sprint(i); cur != v || (i > 0 && old != wantOld) {
			t.Errorf("build %d (%s): template %s with -old %s, want %s with -old %s", i+1, format, cur, old, v, wantOld)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, testName+".tar.zst-old.sha256")); err != nil {
		t.Errorf("the -old of another format has no checksum: %v", err)
	}
	// Leftovers of older vzpkg versions: another format's -old beside the template.
	os.WriteFile(filepath.Join(dir, testName+".tar.xz-old"), []byte("old"), 0o644)
	if err := Remove(ctx, testName, Options{CacheDir: dir}); err != nil {
		t.Fatal(err)
	}
	if left := listDir(t, dir); len(left) != 0 {
		t.Errorf("remove cache left %v", left)
	}
}

// TestDiskFullDuringPack packs onto a full file system: the error says so.
func TestDiskFullDuringPack(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "vzpkg-test-full", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs (needs root): %v %s", err, out)
	}
	defer exec.Command("umount", dir).Run()
	ctx := context.Background()
	opt := Options{CacheDir: dir}
	unlock, err := lockTemplate(ctx, testName, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	b, err := start(testDef(), opt)
	if err != nil {
		t.Fatal(err)
	}
	defer b.cleanup(nil)
	writeRoot(t, b.root, "1")
	// 4 MiB that do not compress.
	f, err := os.Create(filepath.Join(b.root, "noise"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("head", "-c", "4M", "/dev/urandom").Output(); err != nil {
		t.Fatal(err)
	} else {
		f.Write(out)
	}
	f.Close()
	_, err = b.finish(ctx)
	if err == nil || !strings.Contains(err.Error(), "no space left on device") || strings.Contains(err.Error(), "broken pipe") {
		t.Errorf("pack onto a full file system: got %v, want \"no space left on device\"", err)
	}
}

// TestInterruptedInDummyPhase cancels a build as SIGINT does while it makes
// its dummy packages: the error says the build was interrupted.
func TestInterruptedInDummyPhase(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	def := testDef()
	def.Dummies = []tmpl.Dummy{{Name: "udev", Version: "99:1.0-vz1"}}
	dir := t.TempDir()
	_, err := Create(ctx, def, Options{CacheDir: dir})
	if err == nil || !strings.Contains(err.Error(), testName+": interrupted") || strings.Contains(err.Error(), "dpkg-deb") {
		t.Errorf("build interrupted in the dummy phase: got %v, want \"%s: interrupted\"", err, testName)
	}
	if left := listDir(t, dir); len(left) != 0 {
		t.Errorf("interrupted build left %v", left)
	}
}

// TestNextRunRemovesDeadBuildsLeftovers leaves what a build killed by
// SIGKILL leaves (its private directory, a tmpfs and a bind mount of a
// host directory in it): the next run on the template removes it without
// touching the host directory, and leaves another template's alone.
func TestNextRunRemovesDeadBuildsLeftovers(t *testing.T) {
	dir := t.TempDir()
	host := t.TempDir()
	precious := filepath.Join(host, "device-node-stand-in")
	os.WriteFile(precious, []byte("keep"), 0o644)
	stale := filepath.Join(dir, ".vzpkg-"+testName+"-1234567")
	other := filepath.Join(dir, ".vzpkg-"+testName+"-minimal-42")
	for _, d := range []string{filepath.Join(stale, "root/dev"), filepath.Join(stale, "dummies"), other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"mount", "-t", "tmpfs", "vzpkg-test", filepath.Join(stale, "root")},
		{"mkdir", filepath.Join(stale, "root/dev")},
		{"mount", "--rbind", host, filepath.Join(stale, "root/dev")},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Skipf("%v (needs root): %v %s", args, err, out)
		}
	}
	t.Cleanup(func() { exec.Command("umount", "-R", filepath.Join(stale, "root")).Run() })
	if _, err := fakeCreate(context.Background(), t, Options{CacheDir: dir}, "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Errorf("the dead build's private directory %s is still there", stale)
	}
	if data, err := os.ReadFile(precious); err != nil || string(data) != "keep" {
		t.Errorf("removing the leftovers reached into a bind-mounted host directory: %q %v", data, err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another template's private directory went: %v", err)
	}
	if m, _ := os.ReadFile("/proc/self/mounts"); strings.Contains(string(m), stale) {
		t.Errorf("mounts of the dead build are left:\n%s", m)
	}
}

// TestListFinishesAKilledPublish: vzpkg list calls Recover before it looks,
// and sees the whole new set of a publish killed after its commit point.
func TestListFinishesAKilledPublish(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := fakeCreate(ctx, t, Options{CacheDir: dir}, "1"); err != nil {
		t.Fatal(err)
	}
	killed := errors.New("killed")
	opt := Options{CacheDir: dir, fault: func(s string) error {
		if s == "moved "+testName+".manifest" {
			return killed
		}
		return nil
	}}
	if _, err := fakeCreate(ctx, t, opt, "2"); !errors.Is(err, killed) {
		t.Fatalf("publish: %v", err)
	}
	if err := Recover(ctx, dir, testName); err != nil {
		t.Fatal(err)
	}
	if cur, old := publishedVersion(t, dir); cur != "2" || old != "1" {
		t.Errorf("after Recover: template %s with -old %s, want 2 with -old 1", cur, old)
	}
}
