package rootfs

import "testing"

func TestEveryFixupHasItsCode(t *testing.T) {
	for _, f := range fixupTable {
		if (f.run == nil) == (f.chroot == nil) {
			t.Errorf("fixup %s: want exactly one implementation, outside or in a chroot", f.Name)
		}
	}
}
