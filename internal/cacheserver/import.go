package cacheserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"vzpkg2/internal/expect"
	"vzpkg2/internal/store"
	"vzpkg2/internal/store/disk"
)

// ImportReport counts what Import did with the package files it found.
type ImportReport struct {
	Adopted int // their bytes are what cached metadata lists: stored
	Skipped int // no cached metadata lists them (or they are cached already)
	Corrupt int // cached metadata lists their name with other bytes
	Bytes   int64
}

// Import adopts into st the package files (.deb, .udeb, .rpm, .drpm) under
// dirs whose bytes a cached index lists — an apt-cacher-ng cache, an
// /var/cache/apt/archives, an old pkg-cacher cache — under every key that
// lists them, so they are never fetched. Files no cached index lists are
// skipped, files whose name is listed with other bytes are corrupt; each
// file's fate is passed to report.
func Import(ctx context.Context, st *disk.Store, dirs []string, log *slog.Logger, report func(file, fate string)) (ImportReport, error) {
	bySum := map[string][]string{} // listed SHA-256 -> keys
	byName := map[string]bool{}    // listed package file names
	ix := expect.NewListing(func(key string, s expect.Sum) {
		if isPackage(key) {
			bySum[s.SHA256] = append(bySum[s.SHA256], key)
			byName[path.Base(key)] = true
		}
	})
	if err := learnStore(ctx, st, ix, log); err != nil {
		return ImportReport{}, err
	}
	var r ImportReport
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.Type().IsRegular() || !isPackage(p) {
				return ctx.Err()
			}
			fate, n, err := adopt(ctx, st, p, bySum, byName)
			if err != nil {
				return fmt.Errorf("import %s: %w", p, err)
			}
			switch fate {
			case "adopted":
				r.Adopted++
				r.Bytes += n
			case "corrupt":
				r.Corrupt++
			default:
				r.Skipped++
			}
			report(p, fate)
			return ctx.Err()
		})
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

// adopt stores the file at p under the keys that list its bytes.
func adopt(ctx context.Context, st *disk.Store, p string, bySum map[string][]string, byName map[string]bool) (fate string, n int64, err error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	if n, err = io.Copy(h, f); err != nil {
		return "", 0, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	keys := bySum[sum]
	if len(keys) == 0 {
		// apt's archives name an epoch's colon %3a: unescape to compare.
		name, _ := url.PathUnescape(filepath.Base(p))
		if byName[name] || byName[filepath.Base(p)] {
			return "corrupt", n, nil
		}
		return "skipped (no cached index lists it)", n, nil
	}
	fresh := false
	for _, key := range keys {
		if _, err := st.Stat(ctx, key); err == nil {
			continue // cached already
		}
		if _, err := st.Link(ctx, key, store.Info{SHA256: sum, Size: n, Validated: time.Now()}); err == nil {
			fresh = true
			continue
		} else if !errors.Is(err, store.ErrNotExist) {
			return "", n, err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return "", n, err
		}
		w, err := st.Create(ctx, key)
		if err != nil {
			return "", n, err
		}
		_, err = io.Copy(w, f)
		if err == nil && w.SHA256() != sum {
			err = fmt.Errorf("changed while it was imported")
		}
		if err == nil {
			_, err = w.Commit(ctx, store.Info{Validated: time.Now()})
		} else {
			w.Cancel(ctx)
		}
		w.Close()
		if err != nil {
			return "", n, err
		}
		fresh = true
	}
	if !fresh {
		return "skipped (cached already)", n, nil
	}
	return "adopted", n, nil
}

// isPackage reports whether name is a package file's.
func isPackage(name string) bool {
	for _, ext := range []string{".deb", ".udeb", ".rpm", ".drpm"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}
