package packaging

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"vzpkg2/internal/atomicfile"
)

// InstallTo installs files under destdir (empty: the system itself), each
// replaced whole, with its mode whatever the umask. A configuration file
// that exists already is kept, the administrator's changes in it; kept is
// called with each one kept and where it is.
func InstallTo(files []File, destdir string, kept func(f File, dst string)) error {
	for _, f := range files {
		dst := filepath.Join(destdir, filepath.FromSlash(f.Path))
		if f.Config {
			if _, err := os.Lstat(dst); err == nil {
				kept(f, dst)
				continue
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		data, err := f.Content()
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := atomicfile.WriteFile(dst, data, f.Mode); err != nil {
			return fmt.Errorf("install %s: %w", dst, err)
		}
	}
	return nil
}
