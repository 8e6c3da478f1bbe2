package rootfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExplainNamesTheLink checks that a refusal by an os.Root, also one
// that MkdirAll wraps in an error of its own, is explained to the user.
func TestExplainNamesTheLink(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "var/lib"), 0o755)
	os.Symlink("/etc", filepath.Join(root, "var/lib/dnf"))
	r, err := os.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"WriteFile", WriteFile(r, "var/lib/dnf/x", nil, 0o644)},
		{"MkdirAll", r.MkdirAll("var/lib/dnf", 0o755)},
	} {
		if tc.err == nil {
			t.Fatalf("%s through a link out of the root succeeded", tc.name)
		}
		if msg := Explain(root, tc.err).Error(); !strings.Contains(msg, "vzpkg follows neither in a root") {
			t.Errorf("%s: the refusal is not explained: %s", tc.name, msg)
		}
	}
}
