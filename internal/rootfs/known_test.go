package rootfs_test

import (
	"strings"
	"testing"

	"vzpkg2/internal/rootfs"
	"vzpkg2/internal/tmpl"
)

// TestEveryTemplateFixupIsImplemented: a fixup the template format accepts
// but the build does not know fails every build of a template naming it
// (rpmdb-rebuild did, for every shipped RPM template).
func TestEveryTemplateFixupIsImplemented(t *testing.T) {
	for _, f := range tmpl.Fixups() {
		if err := rootfs.Fixup(t.TempDir(), []string{f.Name}); err != nil && strings.Contains(err.Error(), "unknown fixup") {
			t.Errorf("templates may name fixup %s, but the build does not implement it: %v", f.Name, err)
		}
	}
}
