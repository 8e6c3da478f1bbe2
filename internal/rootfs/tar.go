package rootfs

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Pack writes the tree at root to w as a reproducible tar archive: entries in
// lexical order named "./path", numeric owners only, modification times
// clamped to epoch (unless epoch is the zero time), hard links kept as links,
// device nodes and FIFOs kept, extended attributes (file capabilities, ACLs,
// SELinux labels) kept as SCHILY.xattr records. Sockets are skipped.
// Symbolic links are packed as links and never followed: the walk reads
// each entry with lstat, and a file's content is opened inside the root and
// must be the very file the walk saw.
func Pack(root string, w io.Writer, epoch time.Time) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	tw := tar.NewWriter(w)
	links := map[[2]uint64]string{} // (device, inode) → first name of a multiply linked file
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		name := "./"
		if rel != "." {
			name += filepath.ToSlash(rel)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no stat information", p)
		}
		hdr, err := header(p, name, fi, st, epoch)
		if err != nil || hdr == nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg && st.Nlink > 1 {
			id := [2]uint64{st.Dev, st.Ino}
			if first, seen := links[id]; seen {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			} else {
				links[id] = name
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
			return nil
		}
		f, err := r.Open(rel)
		if err != nil {
			return err
		}
		defer f.Close()
		if fst, err := f.Stat(); err != nil {
			return err
		} else if s := fst.Sys().(*syscall.Stat_t); s.Dev != st.Dev || s.Ino != st.Ino {
			return fmt.Errorf("%s was replaced while being packed", p)
		}
		if n, err := io.Copy(tw, f); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		} else if n != hdr.Size {
			return fmt.Errorf("%s changed size while being packed", p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// header describes one file; nil for files a template does not carry (sockets).
func header(p, name string, fi fs.FileInfo, st *syscall.Stat_t, epoch time.Time) (*tar.Header, error) {
	mtime := time.Unix(st.Mtim.Sec, 0)
	if !epoch.IsZero() && mtime.After(epoch) {
		mtime = epoch
	}
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(fi.Mode().Perm()),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: mtime,
	}
	m := fi.Mode()
	if m&fs.ModeSetuid != 0 {
		hdr.Mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		hdr.Mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		hdr.Mode |= 0o1000
	}
	switch {
	case m.IsRegular():
		hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
	case m.IsDir():
		hdr.Typeflag = tar.TypeDir
		if name != "./" {
			hdr.Name += "/"
		}
	case m&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return nil, err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case m&fs.ModeCharDevice != 0:
		hdr.Typeflag = tar.TypeChar
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case m&fs.ModeDevice != 0:
		hdr.Typeflag = tar.TypeBlock
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case m&fs.ModeNamedPipe != 0:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil, nil
	}
	xattrs, err := xattrs(p)
	if err != nil {
		return nil, err
	}
	if len(xattrs) > 0 {
		hdr.Format = tar.FormatPAX
		hdr.PAXRecords = xattrs
	}
	return hdr, nil
}

// xattrs returns the extended attributes of p (not following symlinks) as
// PAX records.
func xattrs(p string) (map[string]string, error) {
	size, err := unix.Llistxattr(p, nil)
	if err != nil || size == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			err = nil
		}
		return nil, err
	}
	buf := make([]byte, size)
	if size, err = unix.Llistxattr(p, buf); err != nil {
		return nil, fmt.Errorf("list xattrs of %s: %w", p, err)
	}
	var names []string
	for start, i := 0, 0; i < size; i++ {
		if buf[i] == 0 {
			names = append(names, string(buf[start:i]))
			start = i + 1
		}
	}
	recs := map[string]string{}
	for _, n := range names {
		vsize, err := unix.Lgetxattr(p, n, nil)
		if err != nil {
			return nil, fmt.Errorf("read xattr %s of %s: %w", n, p, err)
		}
		val := make([]byte, vsize)
		if vsize, err = unix.Lgetxattr(p, n, val); err != nil {
			return nil, fmt.Errorf("read xattr %s of %s: %w", n, p, err)
		}
		recs["SCHILY.xattr."+n] = string(val[:vsize])
	}
	return recs, nil
}
