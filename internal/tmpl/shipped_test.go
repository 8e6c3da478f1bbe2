package tmpl

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ from the current output")

// shippedGoldenDir holds one resolved definition per shipped template, relative
// to the repository root (the tests run there so provenance reads templates/...).
const shippedGoldenDir = "internal/tmpl/testdata/shipped"

// TestShippedTemplatesResolve pins the resolved definition of every shipped
// template: a change to the tree shows up as a reviewable diff of these files
// (`go test ./internal/tmpl -update` rewrites them).
func TestShippedTemplatesResolve(t *testing.T) {
	t.Chdir("../..")
	tree, err := Load([]string{"templates"})
	if err != nil {
		t.Fatalf("the shipped tree has problems:\n%v", err)
	}
	defs := tree.Definitions()
	if len(defs) < 60 {
		t.Errorf("got %d shipped templates, want at least 60", len(defs))
	}
	if *update {
		old, _ := filepath.Glob(filepath.Join(shippedGoldenDir, "*.yaml"))
		for _, f := range old {
			os.Remove(f)
		}
		if err := os.MkdirAll(shippedGoldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]bool{}
	for _, d := range defs {
		file := filepath.Join(shippedGoldenDir, d.Name+".yaml")
		want[file] = true
		t.Run(d.Name, func(t *testing.T) {
			var buf bytes.Buffer
			if _, err := d.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			golden, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("no golden file for %s (run go test ./internal/tmpl -update and review it): %v", d.Name, err)
			}
			if got := buf.String(); got != string(golden) {
				t.Errorf("resolved definition of %s differs from %s (run with -update and review the diff):\n%s", d.Name, file, lineDiff(string(golden), got))
			}
		})
	}
	files, _ := filepath.Glob(filepath.Join(shippedGoldenDir, "*.yaml"))
	for _, f := range files {
		if !want[f] {
			t.Errorf("%s is the golden file of a template the tree no longer has; run with -update", f)
		}
	}
}

// lineDiff shows the first lines where want and got differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 10; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want: %s\n  got:  %s\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}
