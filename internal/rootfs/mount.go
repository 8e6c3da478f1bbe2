package rootfs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Mounts are the kernel API file systems mounted into a root for running
// its own programs in a chroot.
type Mounts struct {
	points []string // mounted, in mount order
}

// MountAPI mounts /proc and binds the host's /dev into root. Unmount undoes it.
func MountAPI(root string) (*Mounts, error) {
	m := &Mounts{}
	for _, mnt := range []struct {
		src, dir, fstype string
		flags            uintptr
	}{
		{"proc", "proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"/dev", "dev", "", unix.MS_BIND | unix.MS_REC},
	} {
		dir := filepath.Join(root, mnt.dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, errors.Join(err, m.Unmount())
		}
		if err := unix.Mount(mnt.src, dir, mnt.fstype, mnt.flags, ""); err != nil {
			return nil, errors.Join(fmt.Errorf("mount %s on %s: %w", mnt.src, dir, err), m.Unmount())
		}
		m.points = append(m.points, dir)
	}
	return m, nil
}

// MountTmpfs mounts a tmpfs of at most size bytes on dir, its top directory
// owned by root with mode 0755 (as a build root needs). UnmountUnder undoes it.
func MountTmpfs(dir string, size int64) error {
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("mode=0755,size=%d", size)); err != nil {
		return fmt.Errorf("mount a tmpfs on %s: %w", dir, err)
	}
	return nil
}

// OnTmpfs reports whether dir is on a tmpfs, where fsync costs nothing.
func OnTmpfs(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.TMPFS_MAGIC
}

// Unmount undoes MountAPI; it is safe to call more than once.
func (m *Mounts) Unmount() error {
	var errs []error
	for i := len(m.points) - 1; i >= 0; i-- {
		if err := unix.Unmount(m.points[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m.points[i], err))
		}
	}
	m.points = nil
	return errors.Join(errs...)
}

// MountsUnder lists the mount points at or below dir, deepest first.
func MountsUnder(dir string) ([]string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		dir = d
	}
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var under []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		p := unescapeMount(fields[1])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			under = append(under, p)
		}
	}
	slices.SortFunc(under, func(a, b string) int { return len(b) - len(a) })
	return under, sc.Err()
}

// UnmountUnder detaches every mount at or below dir, deepest first, so that
// the directory can be removed without reaching into a mounted file system.
func UnmountUnder(dir string) error {
	points, err := MountsUnder(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMount decodes the octal escapes (\040 for space) of /proc/self/mounts.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			var v byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
