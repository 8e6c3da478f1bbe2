package vzpkgcli

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"vzpkg2/internal/tmpl"
	"vzpkg2/templates"
)

// TestBuiltinTreeIsTheShippedTree extracts the tree built into vzpkg and
// compares it with templates/ of the checkout: the same files, bytes and
// executable bits (a script in the tree must start with "#!" to stay
// executable once extracted).
func TestBuiltinTreeIsTheShippedTree(t *testing.T) {
	cache := t.TempDir()
	dir, err := extractTree(templates.FS, cache)
	if err != nil {
		t.Fatal(err)
	}
	want := treeContent(t, shippedTree)
	delete(want, "embed.go")
	got := treeContent(t, dir)
	for p, w := range want {
		switch g, ok := got[p]; {
		case !ok:
			t.Errorf("%s is missing from the extracted tree", p)
		case g != w:
			t.Errorf("%s: extracted %s, want %s as in templates/", p, g[:min(len(g), 40)], w[:min(len(w), 40)])
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s is in the extracted tree but not in templates/", p)
		}
	}
	if len(want) < 40 {
		t.Errorf("only %d files in templates/", len(want))
	}
	// An extraction that was killed left a temporary tree: the next one
	// removes it once it is old, and leaves a recent one (another vzpkg
	// may be writing it).
	stale, recent := filepath.Join(cache, ".templates-1"), filepath.Join(cache, ".templates-2")
	for _, d := range []string{stale, recent} {
		if err := os.MkdirAll(filepath.Join(d, "debian"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(stale, time.Now().Add(-2*time.Hour), time.Now().Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := extractTree(templates.FS, cache); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Errorf("a temporary tree two hours old is still there after an extraction")
	}
	if _, err := os.Stat(recent); err != nil {
		t.Errorf("a recent temporary tree was removed: %v", err)
	}
	os.RemoveAll(recent)
	// A second run uses the tree already there.
	again, err := extractTree(templates.FS, cache)
	if err != nil || again != dir {
		t.Errorf("second extraction: got %q, %v, want %q", again, err, dir)
	}
	if entries, _ := os.ReadDir(cache); len(entries) != 1 {
		t.Errorf("cache directory holds %d entries, want the tree alone", len(entries))
	}
}

// treeContent maps each regular file under root to its mode's executable
// bit and its content.
func treeContent(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		exec := "plain "
		if fi.Mode()&0o111 != 0 {
			exec = "executable "
		}
		m[filepath.ToSlash(rel)] = exec + string(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestExtractedHookIsAnExecutableFile builds a template whose hook lives in
// a built-in tree: the hook path a build gets is a real executable file.
func TestExtractedHookIsAnExecutableFile(t *testing.T) {
	tree := fstest.MapFS{}
	err := fs.WalkDir(templates.FS, "debian", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(templates.FS, p)
		tree[p] = &fstest.MapFile{Data: data}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	tree["embed.go"] = &fstest.MapFile{Data: []byte("package templates\n")}
	tree["debian/_hooks/motd.sh"] = &fstest.MapFile{Data: []byte("#!/bin/sh\necho hook ran in \"$1\"\n")}
	cfg := "debian/12/x86_64/config.yaml"
	tree[cfg].Data = append(bytes.Clone(tree[cfg].Data), "\nhooks:\n  customize: [../../_hooks/motd.sh]\n"...)

	dir, err := extractTree(tree, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "embed.go")); err == nil {
		t.Error("the Go source was extracted with the tree")
	}
	loaded, err := tmpl.Load([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	d, err := loaded.Lookup("debian-12-x86_64-minimal")
	if err != nil {
		t.Fatal(err)
	}
	hooks := d.Hooks[tmpl.PhaseCustomize]
	if len(hooks) != 1 {
		t.Fatalf("got customize hooks %q, want the one of the tree", hooks)
	}
	fi, err := os.Stat(hooks[0])
	if err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 || !strings.HasPrefix(hooks[0], dir+"/") {
		t.Fatalf("hook %s: %v, %v; want an executable file in %s", hooks[0], fi, err, dir)
	}
	out, err := exec.Command(hooks[0], "/the/root").CombinedOutput()
	if err != nil || string(out) != "hook ran in /the/root\n" {
		t.Errorf("running the hook: %v, %q", err, out)
	}
}

// TestExtractRefusesTreesOthersCanChange: a cache directory or an extracted
// tree that someone else could write to is not used.
func TestExtractRefusesTreesOthersCanChange(t *testing.T) {
	_, sum, err := treeFiles(templates.FS)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("open cache directory", func(t *testing.T) {
		cache := filepath.Join(t.TempDir(), "vzpkg")
		if err := os.Mkdir(cache, 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(cache, 0o777)
		if _, err := extractTree(templates.FS, cache); err == nil || !strings.Contains(err.Error(), "writable by others") {
			t.Errorf("got %v, want a refusal", err)
		}
	})
	t.Run("tree in a cache directory opened since", func(t *testing.T) {
		cache := filepath.Join(t.TempDir(), "vzpkg")
		if _, err := extractTree(templates.FS, cache); err != nil {
			t.Fatal(err)
		}
		os.Chmod(cache, 0o777)
		if _, err := extractTree(templates.FS, cache); err == nil || !strings.Contains(err.Error(), "writable by others") {
			t.Errorf("got %v, want a refusal: who can write to %s can swap the tree in it", err, cache)
		}
	})
	t.Run("open tree", func(t *testing.T) {
		cache := t.TempDir()
		planted := filepath.Join(cache, "templates-"+sum)
		if err := os.Mkdir(planted, 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(planted, 0o777)
		if _, err := extractTree(templates.FS, cache); err == nil || !strings.Contains(err.Error(), planted) {
			t.Errorf("got %v, want a refusal naming %s", err, planted)
		}
	})
	t.Run("open directory above", func(t *testing.T) {
		home := filepath.Join(t.TempDir(), "home")
		if err := os.MkdirAll(filepath.Join(home, ".cache"), 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chmod(home, 0o777) // anyone may rename .cache away and put their own there
		cache := filepath.Join(home, ".cache", "vzpkg")
		if _, err := extractTree(templates.FS, cache); err == nil || !strings.Contains(err.Error(), home+", above") {
			t.Errorf("got %v, want a refusal naming %s", err, home)
		}
		os.Chmod(home, 0o777|os.ModeSticky) // sticky: only the owner of .cache may move it
		if _, err := extractTree(templates.FS, cache); err != nil {
			t.Errorf("under a sticky directory: %v", err)
		}
	})
	t.Run("link in an open directory", func(t *testing.T) {
		shared := filepath.Join(t.TempDir(), "shared")
		if err := os.Mkdir(shared, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chmod(shared, 0o777) // anyone may replace the link
		private := t.TempDir()
		if err := os.Symlink(private, filepath.Join(shared, "link")); err != nil {
			t.Fatal(err)
		}
		cache := filepath.Join(shared, "link", "vzpkg")
		if _, err := extractTree(templates.FS, cache); err == nil || !strings.Contains(err.Error(), shared+", above") {
			t.Errorf("got %v, want a refusal naming %s", err, shared)
		}
	})
	t.Run("link", func(t *testing.T) {
		cache := t.TempDir()
		if err := os.Symlink(t.TempDir(), filepath.Join(cache, "templates-"+sum)); err != nil {
			t.Fatal(err)
		}
		if _, err := extractTree(templates.FS, cache); err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("got %v, want a refusal", err)
		}
	})
}

// TestLoneBinaryListsTheShippedTemplates copies a vzpkg binary alone to an
// empty directory: with no tree installed, it lists the templates built
// into it.
func TestLoneBinaryListsTheShippedTemplates(t *testing.T) {
	for _, d := range []string{"/usr/share/vzpkg/templates", "/usr/local/share/vzpkg/templates"} {
		if _, err := os.Stat(d); err == nil {
			t.Skipf("%s is installed on this machine and comes before the built-in tree", d)
		}
	}
	data, err := os.ReadFile(vzpkgBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	lone := filepath.Join(t.TempDir(), "vzpkg")
	if err := os.WriteFile(lone, data, 0o755); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	cmd := exec.Command(lone, "list", "--config", writeConfig(t, "cache_dir = "+t.TempDir()+"\n"))
	cmd.Dir = filepath.Dir(lone)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + home, "XDG_CACHE_HOME=" + filepath.Join(home, ".cache")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("vzpkg list: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 51 || !strings.Contains(string(out), "\ndebian-12-x86_64-minimal ") {
		t.Errorf("vzpkg list printed %d lines, want a header and the 50+ shipped templates:\n%s", len(lines), out)
	}
	show, err := exec.Command(lone, "show-config", "debian-12-x86_64-minimal").CombinedOutput()
	if err != nil || !strings.Contains(string(show), "(the tree built into vzpkg)") {
		t.Errorf("show-config does not name the built-in tree: %v\n%s", err, show)
	}
}
