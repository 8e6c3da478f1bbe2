package tmpl

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzLoad loads a one-template tree whose distribution, version and
// architecture config.yaml files are the fuzzer's. Load must not panic; each
// error must name a file of the tree, with a line inside it when it is a
// config.yaml; every template that resolves must be found by Lookup and
// print (show-config) as valid YAML; and loading the same tree twice must
// give the same result.
func FuzzLoad(f *testing.F) {
	// The shipped Debian and Rocky trees, and trees of TestBadTrees.
	for _, dir := range []string{"../../templates/debian", "../../templates/rocky"} {
		distro := readSeed(f, filepath.Join(dir, ConfigFile))
		versions, err := filepath.Glob(filepath.Join(dir, "*", ConfigFile))
		if err != nil || len(versions) == 0 {
			f.Fatalf("no version directories in %s (%v)", dir, err)
		}
		for _, v := range versions {
			arch := readSeed(f, filepath.Join(filepath.Dir(v), "x86_64", ConfigFile))
			f.Add(distro, readSeed(f, v), arch)
		}
	}
	for _, seed := range [][3]string{
		{validDistro, "", ""},
		{"packager: script:test\nsets:\n  default:\n    pakages: [a]\n", "", ""},
		{validDistro, "suit: bookworm\n", ""},
		{validDistro, "use_cacher: yes\n", ""},
		{validDistro, "\n\nsuite: [bookworm]\n", ""},
		{"sets:\n  default:\n    packages: [a]\n", "", ""},
		{validDistro, "sets:\n  web:\n    include: [minmal]\n", ""},
		{validDistro, "fixups:\n  - apt-clean\n", ""},
		{validDistro, "sets:\n  default:\n    packages:\n      remove: [b]\n", ""},
		{validDistro, "sets:\n  default:\n    packages: ['tool-${codename}']\n", ""},
		{validDistro, "suite: bookworm\n  variant: minbase\n", ""},
		{validDistro, "suite: a\nsuite: b\n", ""},
		{validDistro, "hooks:\n  customize: [_hooks/missing.sh]\n", ""},
		{"packager: dnf\nreleasever: \"9\"\nkeys: [https://example.org/key]\nrepos:\n  baseos:\n    mirrors: [https://example.org/9/]\n    suites: [nine]\nsets:\n  default:\n    packages: [a]\n", "", ""},
		{algebraDistro, "sets:\n  minimal:\n    packages:\n      reset: true\n      add: [c]\n", "sets:\n  web:\n    packages:\n      remove: [curl]\n"},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	root := f.TempDir()
	files := []string{
		filepath.Join(root, "x", ConfigFile),
		filepath.Join(root, "x", "1", ConfigFile),
		filepath.Join(root, "x", "1", "x86_64", ConfigFile),
	}
	if err := os.MkdirAll(filepath.Dir(files[2]), 0o755); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, distro, version, arch string) {
		lines := map[string]int{}
		for i, data := range []string{distro, version, arch} {
			if err := os.WriteFile(files[i], []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
			lines[files[i]] = yamlLines(data)
		}
		tree, err := Load([]string{root})
		if tree == nil {
			t.Fatalf("Load returned no tree (error %v)", err)
		}
		if err != nil {
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("got %T %q, want Errors", err, err)
			}
			for _, e := range es {
				n, isConfig := lines[e.Src.File]
				switch {
				case e.Msg == "":
					t.Fatalf("error at %s has no message", e.Src)
				case e.Src.File != root && !strings.HasPrefix(e.Src.File, root+string(filepath.Separator)):
					t.Fatalf("error %q names a file outside the tree", e)
				case isConfig && (e.Src.Line < 1 || e.Src.Line > n):
					t.Fatalf("error %q: line %d is not in the %d-line file", e, e.Src.Line, n)
				}
			}
		}
		shown := show(t, tree)
		again, err2 := Load([]string{root})
		if errString(err) != errString(err2) || show(t, again) != shown {
			t.Fatalf("loading the same tree twice differs:\nerrors\n%v\nthen\n%v\ndefinitions\n%s\nthen\n%s", err, err2, shown, show(t, again))
		}
	})
}

// show prints every template of tree as show-config does, checking that each
// is found by Lookup and prints as valid YAML.
func show(t *testing.T, tree *Tree) string {
	t.Helper()
	var all strings.Builder
	for _, d := range tree.Definitions() {
		if got, err := tree.Lookup(d.Name); got != d {
			t.Fatalf("Lookup(%q) = %v, %v; want the definition Definitions lists", d.Name, got, err)
		}
		var b bytes.Buffer
		if _, err := d.WriteTo(&b); err != nil {
			t.Fatalf("show-config %s: %v", d.Name, err)
		}
		var v any
		if err := yaml.Unmarshal(b.Bytes(), &v); err != nil {
			t.Fatalf("show-config %s prints invalid YAML (%v):\n%s", d.Name, err, b.String())
		}
		all.Write(b.Bytes())
	}
	return all.String()
}

// yamlLines counts the lines of data as YAML does: CR LF, CR, LF, NEL, LS
// and PS each end one.
func yamlLines(data string) int {
	data = strings.ReplaceAll(data, "\r\n", "\n")
	return 1 + strings.Count(data, "\n") + strings.Count(data, "\r") +
		strings.Count(data, "\u0085") + strings.Count(data, "\u2028") + strings.Count(data, "\u2029")
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func readSeed(f *testing.F, name string) string {
	b, err := os.ReadFile(name)
	if err != nil {
		f.Fatal(err)
	}
	return string(b)
}
