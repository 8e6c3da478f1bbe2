// Package packagertest is the conformance suite of the packager contract:
// every backend runs it against a real repository of its format, with its
// real package manager.
package packagertest

import (
	"bytes"
	"context"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"vzpkg2/internal/packager"
)

// Fixture is what the suite needs of a backend and its repository.
type Fixture struct {
	Packager packager.Packager
	// Spec bootstraps a small root from the repository; Env is what the
	// backend runs with (its Cacher, if any, is a real pkg-cacher).
	Spec *packager.Spec
	Env  packager.Env
	// Extra is a package of the repository that Spec does not install.
	Extra string
	// Upgraded is a package of Spec's set; Publish makes the repository hold
	// a newer version of it, UpgradedVersion.
	Upgraded        string
	UpgradedVersion string
	Publish         func(t *testing.T)
	// RepoDir is where the backend's repository configuration lives in a
	// root ("etc/apt", "etc/yum.repos.d"); the bootstrapped root holds at
	// least one file there.
	RepoDir string
	// Volatile are directories (relative to the root) of package indexes
	// and caches that the backend refreshes before it resolves a request:
	// a failed request may change them, and nothing else.
	Volatile []string
}

// Run runs the suite: its steps share one root, in order, and each needs
// the previous ones to have passed.
func Run(t *testing.T, f Fixture) {
	ctx := context.Background()
	p := f.Packager
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	dummies := buildDummies(t, f)
	env := f.Env
	env.Dummies = dummies

	query := func(t *testing.T) []packager.Package {
		t.Helper()
		pkgs, err := p.Query(ctx, root)
		if err != nil {
			t.Fatalf("Query: %v", err)
		}
		if !slices.IsSortedFunc(pkgs, func(a, b packager.Package) int {
			return strings.Compare(a.Name+"\x00"+a.Arch, b.Name+"\x00"+b.Arch)
		}) {
			t.Errorf("Query's list is not sorted by name and architecture: %v", pkgs)
		}
		return pkgs
	}
	has := func(pkgs []packager.Package, name string) (packager.Package, bool) {
		i := slices.IndexFunc(pkgs, func(p packager.Package) bool { return p.Name == name })
		if i < 0 {
			return packager.Package{}, false
		}
		return pkgs[i], true
	}
	step := func(name string, fn func(t *testing.T)) {
		if !t.Run(name, fn) {
			t.FailNow()
		}
	}

	step("bootstrap", func(t *testing.T) {
		if err := p.Bootstrap(ctx, root, f.Spec, env); err != nil {
			t.Fatalf("Bootstrap: %v", err)
		}
		pkgs := query(t)
		for _, name := range f.Spec.Packages {
			if p, ok := has(pkgs, name); !ok || p.Version == "" || p.Arch == "" {
				t.Errorf("%s after Bootstrap: got %+v (listed: %t), want it with a version and an architecture", name, p, ok)
			}
		}
		for _, d := range f.Spec.Dummies {
			if _, ok := has(pkgs, d.Name); !ok {
				t.Errorf("dummy %s is not installed", d.Name)
			}
		}
		if _, ok := has(pkgs, f.Extra); ok {
			t.Errorf("%s is installed, but the set does not name it", f.Extra)
		}
	})

	step("install", func(t *testing.T) {
		if err := p.Install(ctx, root, f.Spec, env, []string{f.Extra}); err != nil {
			t.Fatalf("Install %s: %v", f.Extra, err)
		}
		if _, ok := has(query(t), f.Extra); !ok {
			t.Errorf("%s is not listed after Install", f.Extra)
		}
	})

	step("unknown package fails and changes nothing", func(t *testing.T) {
		before, tree := query(t), snapshot(t, root, f.Volatile)
		err := p.Install(ctx, root, f.Spec, env, []string{"vzpkg-no-such-package", f.Extra})
		if err == nil {
			t.Fatal("Install of an unknown package succeeded")
		}
		if after := query(t); !slices.Equal(before, after) {
			t.Errorf("the failed Install changed the package list:\nbefore %v\nafter  %v", before, after)
		}
		if diff := diffTrees(tree, snapshot(t, root, f.Volatile)); len(diff) > 0 {
			t.Errorf("the failed Install changed the root: %v", diff)
		}
		if err := p.Remove(ctx, root, f.Spec, env, []string{"vzpkg-no-such-package"}); err == nil {
			t.Error("Remove of a package that is not installed succeeded")
		}
		if after := query(t); !slices.Equal(before, after) {
			t.Errorf("the failed Remove changed the package list:\nbefore %v\nafter  %v", before, after)
		}
	})

	step("update", func(t *testing.T) {
		ups, err := p.CheckUpdates(ctx, root, f.Spec, env)
		if err != nil {
			t.Fatalf("CheckUpdates: %v", err)
		}
		if len(ups) != 0 {
			t.Errorf("CheckUpdates before anything was published: %v, want none", ups)
		}
		changed, err := p.Update(ctx, root, f.Spec, env, nil)
		if err != nil {
			t.Fatalf("Update with nothing new: %v", err)
		}
		if changed {
			t.Error("Update with nothing new reported a change")
		}
		f.Publish(t)
		before := query(t)
		ups, err = p.CheckUpdates(ctx, root, f.Spec, env)
		if err != nil {
			t.Fatalf("CheckUpdates: %v", err)
		}
		if u, ok := has(ups, f.Upgraded); !ok || u.Version != f.UpgradedVersion || len(ups) != 1 {
			t.Errorf("CheckUpdates after the repository gained %s %s: got %v", f.Upgraded, f.UpgradedVersion, ups)
		}
		if after := query(t); !slices.Equal(before, after) {
			t.Error("CheckUpdates changed the installed packages")
		}
		changed, err = p.Update(ctx, root, f.Spec, env, nil)
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		if u, _ := has(query(t), f.Upgraded); !changed || u.Version != f.UpgradedVersion {
			t.Errorf("Update: changed %t, %s %q; want true, %q", changed, f.Upgraded, u.Version, f.UpgradedVersion)
		}
		if changed, err := p.Update(ctx, root, f.Spec, env, []string{f.Upgraded}); err != nil || changed {
			t.Errorf("Update of the up-to-date %s: changed %t, %v; want no change", f.Upgraded, changed, err)
		}
	})

	step("remove", func(t *testing.T) {
		if err := p.Remove(ctx, root, f.Spec, env, []string{f.Extra}); err != nil {
			t.Fatalf("Remove %s: %v", f.Extra, err)
		}
		pkgs := query(t)
		if _, ok := has(pkgs, f.Extra); ok {
			t.Errorf("%s is still listed after Remove", f.Extra)
		}
		for _, name := range f.Spec.Packages {
			if _, ok := has(pkgs, name); !ok {
				t.Errorf("removing %s removed %s too", f.Extra, name)
			}
		}
	})

	step("repository files", func(t *testing.T) {
		dir := filepath.Join(root, f.RepoDir)
		originals := map[string][]byte{}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Type().IsRegular() && !strings.HasSuffix(e.Name(), ".disabled") {
				data, _ := os.ReadFile(filepath.Join(dir, e.Name()))
				originals[e.Name()] = data
			}
		}
		if len(originals) == 0 {
			t.Fatalf("the bootstrapped root has no repository file in /%s", f.RepoDir)
		}
		if err := p.ConfigureRepos(ctx, root, f.Spec, nil); err != nil {
			t.Fatalf("ConfigureRepos without a cacher: %v", err)
		}
		cacher, _ := url.Parse("http://192.0.2.7:3142/")
		for i := range 2 { // idempotent
			if err := p.ConfigureRepos(ctx, root, f.Spec, cacher); err != nil {
				t.Fatalf("ConfigureRepos #%d: %v", i+1, err)
			}
		}
		for name, data := range originals {
			if got, err := os.ReadFile(filepath.Join(dir, name+".disabled")); err != nil || !bytes.Equal(got, data) {
				t.Errorf("original %s is not kept as %s.disabled (%v)", name, name, err)
			}
		}
		found := false
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() && !strings.HasSuffix(p, ".disabled") {
				data, _ := os.ReadFile(p)
				found = found || bytes.Contains(data, []byte("http://192.0.2.7:3142/"))
			}
			return nil
		})
		if !found {
			t.Errorf("no repository file in /%s points at the cacher", f.RepoDir)
		}
		if matches, _ := filepath.Glob(filepath.Join(dir, "*.disabled.disabled")); len(matches) > 0 {
			t.Errorf("a second ConfigureRepos disabled its own files: %v", matches)
		}
	})
}

func buildDummies(t *testing.T, f Fixture) []string {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	for _, d := range f.Spec.Dummies {
		p, err := f.Packager.Dummy(context.Background(), dir, f.Spec, d)
		if err != nil {
			t.Fatalf("Dummy %s: %v", d.Name, err)
		}
		paths = append(paths, p)
	}
	return paths
}

// snapshot maps every path in root but the volatile directories to its
// type, size and modification time.
// SQLite's shared-memory index files (*-shm) are left out: a reader of an
// rpm database in WAL mode leaves one, which changes no data.
func snapshot(t *testing.T, root string, volatile []string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "proc" || rel == "dev" || rel == "sys" || slices.Contains(volatile, filepath.ToSlash(rel)) {
			return fs.SkipDir
		}
		if strings.HasSuffix(rel, "-shm") {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			m[rel] = "dir"
		} else {
			m[rel] = fi.Mode().String() + " " + fi.ModTime().String() + " " + strconv.FormatInt(fi.Size(), 10)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// diffTrees lists the paths that differ between two snapshots.
func diffTrees(a, b map[string]string) []string {
	var diff []string
	for p, v := range a {
		if b[p] != v {
			diff = append(diff, p)
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			diff = append(diff, p)
		}
	}
	slices.Sort(diff)
	return diff
}
