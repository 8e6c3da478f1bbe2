// Package completion writes the bash, zsh and fish completion scripts of a
// cobra command tree and checks that the ones shipped under etc/completions
// are current. The scripts ask the program itself (its hidden __complete
// command) what to offer, so they change only when the tree's shape does.
package completion

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/cobra"
)

// Files maps the path of each script of root, relative to the completions
// directory, to its content: bash/NAME, zsh/_NAME and fish/NAME.fish, where
// the packages' bash-completion, zsh vendor-completions and fish
// vendor_completions.d directories expect them.
func Files(root *cobra.Command) (map[string][]byte, error) {
	name := root.Name()
	gen := map[string]func(io.Writer) error{
		filepath.Join("bash", name):         func(w io.Writer) error { return root.GenBashCompletionV2(w, true) },
		filepath.Join("zsh", "_"+name):      root.GenZshCompletion,
		filepath.Join("fish", name+".fish"): func(w io.Writer) error { return root.GenFishCompletion(w, true) },
	}
	files := map[string][]byte{}
	for p, g := range gen {
		var b bytes.Buffer
		if err := g(&b); err != nil {
			return nil, err
		}
		files[p] = b.Bytes()
	}
	return files, nil
}

// Check fails t when the scripts of root under dir differ from freshly
// generated ones or are missing. With update it writes them instead; hint
// tells the reader which command does that.
func Check(t *testing.T, root *cobra.Command, dir string, update bool, hint string) {
	t.Helper()
	files, err := Files(root)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range files {
		full := filepath.Join(dir, p)
		if update {
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(full, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(full)
		switch {
		case err != nil:
			t.Errorf("etc/completions/%s is missing; run %s", p, hint)
		case !bytes.Equal(got, want):
			t.Errorf("etc/completions/%s is stale; run %s", p, hint)
		}
	}
}
