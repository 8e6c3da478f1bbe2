package rootfs

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Mounts are the kernel API file systems mounted into a root for running
// its own programs in a chroot. Every mount is recorded before it is made,
// and Unmount undoes what the record holds.
type Mounts struct {
	points []string // host paths of the mount points, in mount order
}

// MountAPI mounts /proc and binds the host's /dev into root. Unmount undoes it.
// Their mount points are resolved as Mount resolves them.
func MountAPI(root string) (*Mounts, error) {
	m := &Mounts{}
	for _, mnt := range []struct {
		src, dir, fstype string
		flags            uintptr
	}{
		{"proc", "proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"/dev", "dev", "", unix.MS_BIND | unix.MS_REC},
	} {
		if err := m.Mount(root, mnt.dir, mnt.src, mnt.fstype, mnt.flags); err != nil {
			return nil, errors.Join(err, m.Unmount())
		}
	}
	return m, nil
}

// Mount mounts src (a file system of type fstype, or with MS_BIND in flags
// the host's directory src) on the directory rel of root, creating the
// directories on the way that are missing. rel is resolved inside root and
// may hold no symbolic link at all: a mount point that is a link, or is
// reached through one, is refused, whether the link leads out of the root
// or not (replacing it would change the root's meaning, following it could
// mount over the host). The directory is opened (openat2 with
// RESOLVE_IN_ROOT and RESOLVE_NO_SYMLINKS) and the mount is made on that
// open directory through /proc/self/fd, so the path cannot be swapped for a
// link between the check and the mount.
func (m *Mounts) Mount(root, rel, src, fstype string, flags uintptr) error {
	what := fmt.Sprintf("mount %s on %s in %s", src, rel, root)
	fd, err := openMountPoint(root, rel)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer unix.Close(fd)
	proc := fmt.Sprintf("/proc/self/fd/%d", fd)
	point, err := os.Readlink(proc)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	m.points = append(m.points, point) // recorded before it is made
	if err := unix.Mount(src, proc, fstype, flags, ""); err != nil {
		m.points = m.points[:len(m.points)-1]
		return fmt.Errorf("%s: %w", what, err)
	}
	// A mount under a shared one (systemd makes / shared) is shared with
	// its source's peers: a mount made later on top of it, say on dev/shm
	// of a bound /dev, would appear on the host's /dev/shm too. As a slave
	// it receives the host's mounts and sends none back.
	mfd, err := openMountPoint(root, rel)
	if err == nil {
		err = unix.Mount("", fmt.Sprintf("/proc/self/fd/%d", mfd), "", unix.MS_REC|unix.MS_SLAVE, "")
		unix.Close(mfd)
	}
	if err != nil {
		return fmt.Errorf("%s: make it a slave mount: %w", what, err)
	}
	return nil
}

// openMountPoint opens rel in root as an O_PATH directory, creating what is
// missing, refusing every symbolic link on the way.
func openMountPoint(root, rel string) (int, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return -1, err
	}
	defer r.Close()
	rel = filepath.Clean(rel)
	if filepath.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
		return -1, fmt.Errorf("%s is not a path inside the root", rel)
	}
	// Make the missing directories and name the link, when there is one, in
	// the error; openat2 below is what enforces it.
	for i := 0; i <= len(rel); i++ {
		if i < len(rel) && rel[i] != '/' {
			continue
		}
		dir := rel[:i]
		fi, err := r.Lstat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := r.Mkdir(dir, 0o755); err != nil {
				return -1, err
			}
		case err != nil:
			return -1, err
		case fi.Mode()&fs.ModeSymlink != 0:
			return -1, fmt.Errorf("%s is a symbolic link in the root: refusing to mount through it", dir)
		case !fi.IsDir():
			return -1, fmt.Errorf("%s in the root is not a directory", dir)
		}
	}
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(rfd)
	fd, err := unix.Openat2(rfd, rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ELOOP) {
		return -1, fmt.Errorf("%s is reached through a symbolic link in the root: refusing to mount through it", rel)
	} else if err != nil {
		return -1, &fs.PathError{Op: "openat2", Path: rel, Err: err}
	}
	return fd, nil
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
		if err := unmount(m.points[i]); err != nil {
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
		if err := unmount(p); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// unmount detaches the mount at p, not following a symbolic link at p; a
// point no longer mounted (or gone) is not an error. Every component of p
// before the last was a directory, not a link, when the mount was made, and
// while it is mounted none of them can be renamed or removed (EBUSY).
func unmount(p string) error {
	err := unix.Unmount(p, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
	if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
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
