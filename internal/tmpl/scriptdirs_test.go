package tmpl

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestScriptDirs loads two roots, one with a _packagers directory of
// executables: it is not a level of the tree, and a script packager's
// templates name the roots' _packagers directories, first root first.
func TestScriptDirs(t *testing.T) {
	files := map[string]string{
		"x/config.yaml":          "packager: script:test\nsets:\n  default:\n    packages: [a]\n",
		"x/1/x86_64/config.yaml": "",
		"_packagers/test-query":  "#!/bin/sh\n",
	}
	first := writeTree(t, files)
	second := t.TempDir()
	if err := os.Chmod(filepath.Join(first, "_packagers", "test-query"), 0o755); err != nil {
		t.Fatal(err)
	}
	tree, err := Load([]string{first, second})
	if err != nil {
		t.Fatalf("Load of a tree with a _packagers directory: %v", err)
	}
	def, err := tree.Lookup("x-1-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(first, ScriptDir), filepath.Join(second, ScriptDir)}
	if !slices.Equal(def.ScriptDirs, want) {
		t.Errorf("ScriptDirs: got %v, want %v", def.ScriptDirs, want)
	}
}
