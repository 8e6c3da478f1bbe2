package vzpkgcli

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"vzpkg2/internal/atomicfile"
	"vzpkg2/templates"
)

// SystemTreeCache is where root extracts the template tree built into vzpkg.
const SystemTreeCache = "/var/cache/vzpkg"

// treeCacheDir is where the built-in tree is extracted: SystemTreeCache as
// root, vzpkg/ in the user's cache directory ($XDG_CACHE_HOME, ~/.cache)
// otherwise.
func treeCacheDir() (string, error) {
	if os.Geteuid() == 0 {
		return SystemTreeCache, nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no directory to extract the built-in template tree to: %w", err)
	}
	return filepath.Join(dir, "vzpkg"), nil
}

// extractTree returns a directory under cacheDir holding the files of fsys
// (less the Go sources at its root), so that hooks and packagers are real
// files that can be run: cacheDir/templates-HASH, HASH naming the content.
// A directory already there is used as it is; otherwise the tree is written
// to a temporary directory beside it and renamed into place, so that a
// directory of that name is always whole. Files starting with "#!" are made
// executable. cacheDir and the tree must belong to the caller (or root) and
// be writable by nobody else, or they are refused: whoever could change them
// could change what a build runs.
func extractTree(fsys fs.FS, cacheDir string) (string, error) {
	files, sum, err := treeFiles(fsys)
	if err != nil {
		return "", fmt.Errorf("read the built-in template tree: %w", err)
	}
	// cacheDir, and every directory above it, is checked before a tree in
	// it is used: whoever could write to one could swap the checked tree
	// for another.
	if err := checkAncestors(cacheDir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if err := checkPrivate(cacheDir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	dir := filepath.Join(cacheDir, "templates-"+sum)
	if err := checkPrivate(dir); err == nil {
		return dir, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(cacheDir), 0o755); err != nil {
		return "", fmt.Errorf("extract the built-in template tree: %w", err)
	}
	err = os.Mkdir(cacheDir, 0o755)
	if err == nil {
		err = os.Chmod(cacheDir, 0o755) // past the umask
	} else if errors.Is(err, fs.ErrExist) {
		err = nil
	}
	if err != nil {
		return "", fmt.Errorf("extract the built-in template tree: %w", err)
	}
	if err := errors.Join(checkAncestors(cacheDir), checkPrivate(cacheDir)); err != nil {
		return "", err
	}
	removeStale(cacheDir)
	tmp, err := os.MkdirTemp(cacheDir, ".templates-*")
	if err != nil {
		return "", fmt.Errorf("extract the built-in template tree: %w", err)
	}
	defer os.RemoveAll(tmp) // after the rename, nothing is left there
	if err := writeTree(tmp, fsys, files); err != nil {
		return "", fmt.Errorf("extract the built-in template tree: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another vzpkg extracting the same tree got there first.
		if cerr := checkPrivate(dir); cerr != nil {
			return "", fmt.Errorf("extract the built-in template tree: %w", err)
		}
		return dir, nil
	}
	if err := atomicfile.SyncDir(cacheDir); err != nil {
		return "", fmt.Errorf("extract the built-in template tree: %w", err)
	}
	return dir, nil
}

// staleAfter is how old a temporary tree must be to be taken for what an
// interrupted extraction left: an extraction takes a second or two.
const staleAfter = time.Hour

// removeStale removes the temporary trees of extractions that did not
// finish (killed, or the machine went down).
func removeStale(cacheDir string) {
	old, _ := filepath.Glob(filepath.Join(cacheDir, ".templates-*"))
	for _, p := range old {
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() && time.Since(fi.ModTime()) > staleAfter {
			os.RemoveAll(p)
		}
	}
}

// treeFiles lists the regular files of fsys in lexical order, without the Go
// sources at its root, and returns a hash of their names, modes and content.
func treeFiles(fsys fs.FS) ([]string, string, error) {
	var files []string
	h := sha256.New()
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		if templates.IsSource(p) {
			return nil
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		files = append(files, p)
		fmt.Fprintf(h, "%s\x00%o\x00%d\x00", p, fileMode(data), len(data))
		h.Write(data)
		return nil
	})
	return files, hex.EncodeToString(h.Sum(nil)[:12]), err
}

// fileMode is the mode a file of the tree gets: scripts are executable.
func fileMode(data []byte) fs.FileMode {
	if bytes.HasPrefix(data, []byte("#!")) {
		return 0o755
	}
	return 0o644
}

// writeTree writes files of fsys into dir, durably, and makes dir readable by
// everyone.
func writeTree(dir string, fsys fs.FS, files []string) error {
	dirs := map[string]bool{dir: true}
	for _, p := range files {
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		dirs[filepath.Dir(dst)] = true
		f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode(data))
		if err != nil {
			return err
		}
		_, err = f.Write(data)
		// Set the mode past the umask.
		if err = errors.Join(err, f.Chmod(fileMode(data)), f.Sync(), f.Close()); err != nil {
			return err
		}
	}
	for d := range dirs {
		if err := errors.Join(os.Chmod(d, 0o755), atomicfile.SyncDir(d)); err != nil {
			return err
		}
	}
	return nil
}

// checkPrivate returns an error wrapping fs.ErrNotExist when dir does not
// exist, and an error naming the fix when it is not a directory (a link, say)
// owned by the caller or root that no one else may write to.
func checkPrivate(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory; remove it so vzpkg can extract its built-in template tree there", dir)
	case othersMayChange(fi, false):
		return fmt.Errorf("%s is writable by others than its owner, or owned by someone else: vzpkg does not use a template tree others could change; remove it, or give a tree with --templates", dir)
	}
	return nil
}

// checkAncestors returns an error naming the fix when a directory above dir
// (as written, and with links resolved) belongs to someone other than the
// caller and root, or others may write to it: they could move dir, or a
// link on the way, and put their own in its place between its check and
// its use. A sticky directory (/tmp) is fine: only an entry's owner may
// move it. It wraps fs.ErrNotExist when dir's parent does not exist yet.
func checkAncestors(dir string) error {
	resolved, err := filepath.EvalSymlinks(filepath.Dir(dir))
	if err != nil {
		return err
	}
	for _, p := range []string{filepath.Dir(filepath.Clean(dir)), resolved} {
		for {
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			if fi.Mode()&fs.ModeSymlink == 0 && othersMayChange(fi, true) {
				return fmt.Errorf("%s, above %s, is owned by someone else or writable by others: they could swap the template tree vzpkg extracts there; make it yours and writable by you alone, set XDG_CACHE_HOME elsewhere, or give a tree with --templates", p, dir)
			}
			if p == filepath.Dir(p) {
				break
			}
			p = filepath.Dir(p)
		}
	}
	return nil
}

// othersMayChange reports whether someone other than the caller and root
// owns the file of fi or may write to it; with sticky, a sticky directory
// writable by all (/tmp) is fine: only an entry's owner may move it.
func othersMayChange(fi fs.FileInfo, sticky bool) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	open := fi.Mode().Perm()&0o022 != 0 && !(sticky && fi.Mode()&fs.ModeSticky != 0)
	return !ok || st.Uid != 0 && int(st.Uid) != os.Geteuid() || open
}
