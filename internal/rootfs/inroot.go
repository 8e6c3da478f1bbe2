package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// A root vzpkg works on — a template's build root, an installed container's
// root — is hostile: packages, hooks and the container's own root user put
// whatever they like in it, symbolic links included. So vzpkg never joins a
// path onto a root and hands it to the host: every file operation goes
// through an os.Root, which resolves each name inside the root and refuses
// a symbolic link that leads out of it. An absolute symbolic link is refused
// too, even one that would stay inside the root when read from a chroot:
// os.Root does not resolve those, and none of the places vzpkg writes to
// needs one.

// WriteFile makes name in r a new regular file holding data, with mode
// perm. Whatever was at name (a file, a symbolic link, anything but a
// directory) is removed first, and the file is created with O_EXCL: neither
// a link at name nor a file swapped in meanwhile is written through.
func WriteFile(r *os.Root, name string, data []byte, perm fs.FileMode) error {
	if fi, err := r.Lstat(name); err == nil && fi.IsDir() {
		return &fs.PathError{Op: "write", Path: name, Err: errors.New("is a directory")}
	} else if err == nil {
		if err := r.Remove(name); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := r.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	return errors.Join(err, f.Close())
}

// CopyFile copies the host's file src to name in r, as WriteFile writes it.
func CopyFile(r *os.Root, src, name string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return WriteFile(r, name, data, 0o644)
}

// RemoveGlobs removes what each of patterns (fs.Glob patterns, relative to
// r) matches. Directories that cannot be read inside r, such as a link
// leading out of it, match nothing.
func RemoveGlobs(r *os.Root, patterns ...string) error {
	for _, pat := range patterns {
		matches, err := fs.Glob(r.FS(), pat)
		if err != nil {
			return err
		}
		for _, m := range matches {
			if err := r.RemoveAll(m); err != nil {
				return err
			}
		}
	}
	return nil
}

// Explain adds to an error of an os.Root of root what a user needs when
// the root refused to follow a symbolic link: which path, and why.
func Explain(root string, err error) error {
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		return err
	}
	// os.Root's MkdirAll wraps the refusal of one step in its own error.
	for inner, ok := pe.Err.(*fs.PathError); ok; inner, ok = pe.Err.(*fs.PathError) {
		pe = inner
	}
	if pe.Err != nil && pe.Err.Error() == "path escapes from parent" {
		return fmt.Errorf("%w: a symbolic link on the way to %s in %s is absolute or leads out of it, and vzpkg follows neither in a root", err, pe.Path, root)
	}
	return err
}
