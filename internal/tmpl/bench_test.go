package tmpl

import (
	"fmt"
	"strings"
	"testing"
)

// benchmarkCheck loads (as vzpkg check does) a tree whose default set has
// n packages: the distribution's base set lists them all, the version's
// set includes it and removes a tenth, the architecture's adds a tenth back.
func benchmarkCheck(b *testing.B, n int) {
	var base, rm, add strings.Builder
	for i := range n {
		fmt.Fprintf(&base, "      - pkg-%07d\n", i)
		if i%10 == 0 {
			fmt.Fprintf(&rm, "          - pkg-%07d\n", i)
			fmt.Fprintf(&add, "          - pkg-%07d\n", i)
		}
	}
	root := writeTree(b, map[string]string{
		"x/config.yaml":          "packager: script:test\nsets:\n  base:\n    packages:\n" + base.String(),
		"x/1/config.yaml":        "sets:\n  default:\n    include: [base]\n    packages:\n      remove:\n" + rm.String(),
		"x/1/x86_64/config.yaml": "sets:\n  default:\n    packages:\n      add:\n" + add.String(),
	})
	b.ResetTimer()
	for b.Loop() {
		tree, err := Load([]string{root})
		if err != nil {
			b.Fatal(err)
		}
		d, err := tree.Lookup("x-1-x86_64")
		if err != nil {
			b.Fatal(err)
		}
		if len(d.Packages) != n {
			b.Fatalf("%d packages, want %d", len(d.Packages), n)
		}
	}
}

func BenchmarkCheck20k(b *testing.B)  { benchmarkCheck(b, 20_000) }
func BenchmarkCheck200k(b *testing.B) { benchmarkCheck(b, 200_000) }
