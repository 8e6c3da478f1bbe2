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

// TestFixupTable: every entry of the table has its code, one way or the
// other, and the names are sorted and unique.
func TestFixupTable(t *testing.T) {
	fs := rootfs.Fixups()
	for i, f := range fs {
		if f.Name == "" || f.Doc == "" || (f.Packager != "" && f.Packager != tmpl.PackagerApt && f.Packager != tmpl.PackagerDnf) {
			t.Errorf("fixup %+v: want a name, a doc and a packager of apt, dnf or all", f)
		}
		if i > 0 && fs[i-1].Name >= f.Name {
			t.Errorf("fixups %q and %q are not sorted and unique", fs[i-1].Name, f.Name)
		}
	}
}
