// Package manpage generates section-8 man pages from a cobra command tree and
// checks that the pages checked in under docs/man are current.
package manpage

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// date is fixed so that regenerating the pages changes them only when the
// command tree changes.
var date = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Generate writes one page per command of root into dir.
func Generate(root *cobra.Command, dir string) error {
	header := &doc.GenManHeader{
		Title:   strings.ToUpper(root.Name()),
		Section: "8",
		Date:    &date,
		Source:  "vzpkg2",
		Manual:  root.Name() + " manual",
	}
	if err := doc.GenManTree(root, header, dir); err != nil {
		return err
	}
	pages, _ := filepath.Glob(filepath.Join(dir, root.Name()+"*.8"))
	for _, p := range pages {
		data, err := os.ReadFile(p)
		if err == nil {
			err = os.WriteFile(p, []byte(escapeNonASCII(string(data))), 0o644)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// escapeNonASCII writes each non-ASCII character of a page as a troff
// escape (\[u2014]), which troff reads whatever the input encoding.
func escapeNonASCII(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < utf8.RuneSelf {
			b.WriteRune(r)
		} else {
			fmt.Fprintf(&b, "\\[u%04X]", r)
		}
	}
	return b.String()
}

// Check fails t when the pages of root in manDir differ from freshly generated
// ones, are missing, or document commands root no longer has. With update it
// rewrites them instead; hint tells the reader which command does that.
func Check(t *testing.T, root *cobra.Command, manDir string, update bool, hint string) {
	t.Helper()
	gen := t.TempDir()
	if err := Generate(root, gen); err != nil {
		t.Fatal(err)
	}
	pattern := root.Name() + "*.8"
	generated, _ := filepath.Glob(filepath.Join(gen, pattern))
	checkedIn, _ := filepath.Glob(filepath.Join(manDir, pattern))
	if len(generated) == 0 {
		t.Fatalf("no %s pages generated", root.Name())
	}
	if update {
		for _, f := range checkedIn {
			os.Remove(f)
		}
		if err := os.MkdirAll(manDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range generated {
			data, err := os.ReadFile(f)
			if err == nil {
				err = os.WriteFile(filepath.Join(manDir, filepath.Base(f)), data, 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	seen := map[string]bool{}
	for _, f := range generated {
		name := filepath.Base(f)
		seen[name] = true
		want, _ := os.ReadFile(f)
		got, err := os.ReadFile(filepath.Join(manDir, name))
		switch {
		case err != nil:
			t.Errorf("docs/man/%s is missing; run %s", name, hint)
		case !bytes.Equal(got, want):
			t.Errorf("docs/man/%s is stale; run %s", name, hint)
		}
	}
	for _, f := range checkedIn {
		if !seen[filepath.Base(f)] {
			t.Errorf("docs/man/%s documents a command %s no longer has; run %s", filepath.Base(f), root.Name(), hint)
		}
	}
}
