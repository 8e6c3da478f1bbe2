package disk

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"vzpkg2/internal/atomicfile"
)

// Commits do not fsync each body: one fsync per file would pace a client
// fetching hundreds of packages one after the other. Instead a flusher syncs
// the file system at most once per flushEvery while commits happen (5 s, the
// interval at which ext4 commits its journal by default: a sync of the whole
// file system stalls the file creations of the commits under way, so a burst
// of a few seconds is better served without one), then
// records in the file "synced" the time that sync began: every blob last
// written before it is on disk. Close records a last sync as clean. After
// any other end, Open hashes again the blobs written since the recorded time,
// the ones a power loss or kernel crash may have left torn, and removes the
// damaged ones: a crash costs refetches, never a wrong body. A process crash
// loses nothing, the kernel still holds the writes.
const (
	flushEvery  = 5 * time.Second
	syncedFile  = "synced"
	mtimeSlack  = 2 * time.Second // clock granularity between now and mtimes
	stampLayout = time.RFC3339Nano
	cleanMark   = " clean"  // last: the store was closed
	tokenMark   = " index=" // after the time, before cleanMark: the token of index.pack and index.log (see pack.go)
)

// Recovery is what Open found of a crash.
type Recovery struct {
	Clean      bool // the store was closed cleanly: nothing to recover
	Checked    int  // blobs written since the last sync, hashed again
	Removed    int  // of those, torn ones removed
	CollectDue bool // not closed cleanly, now or before, and not collected since: bodies no index entry names may be left (GC)
}

// startFlusher runs the flusher until stopFlusher.
func (s *Store) startFlusher() {
	s.stopFlush, s.flushDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.flushDone)
		t := time.NewTicker(flushEvery)
		defer t.Stop()
		for {
			select {
			case <-s.stopFlush:
				return
			case <-t.C:
				if s.dirty.Load() {
					s.flush(false, "") // failed: retried on the next tick
				}
			}
		}
	}()
}

func (s *Store) stopFlusher() {
	close(s.stopFlush)
	<-s.flushDone
}

// flush makes every commit so far durable and records when; clean marks the
// record as the last one before Close, naming token (see pack.go) unless
// it is "".
func (s *Store) flush(clean bool, token string) error {
	began := time.Now()
	s.dirty.Store(false)
	d, err := os.Open(s.root)
	if err == nil {
		err = errors.Join(unix.Syncfs(int(d.Fd())), d.Close())
	}
	if err == nil {
		err = s.writeSynced(began, clean, token)
	}
	if err != nil {
		s.dirty.Store(true)
		return fmt.Errorf("sync cache directory: %w", err)
	}
	return nil
}

// writeSynced records t durably.
func (s *Store) writeSynced(t time.Time, clean bool, token string) error {
	line := t.UTC().Format(stampLayout)
	if clean && token != "" {
		line += tokenMark + token
	}
	if clean {
		line += cleanMark
	}
	return atomicfile.WriteFile(filepath.Join(s.root, syncedFile), []byte(line+"\n"), 0o644)
}

// recover checks the blobs a crash may have torn, unless the store was
// closed cleanly, and starts a new record: from now on an end without Close
// is a crash. A store without a record is new, or was written by a version
// that synced every commit: nothing to check. An unreadable record checks
// everything. After a clean close it returns the token the record names.
func (s *Store) recover() (r Recovery, token string, err error) {
	now := time.Now()
	b, err := os.ReadFile(filepath.Join(s.root, syncedFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return r, "", err
	default:
		line := strings.TrimSuffix(string(b), "\n")
		if line, ok := strings.CutSuffix(line, cleanMark); ok {
			r.Clean = true
			if _, t, ok := strings.Cut(line, tokenMark); ok {
				token = t
			}
			break
		}
		t, err := time.Parse(stampLayout, line)
		if err != nil {
			t = time.Time{}
		}
		if r, err = s.recheck(t); err != nil {
			return r, "", err
		}
	}
	return r, token, s.writeSynced(now, false, "")
}

// recheck hashes again the blobs written since t and removes those whose
// bytes do not match their name. Only the directories of blobs/ changed
// since t are read: a blob is renamed or linked into place, which changes
// its directory, and a large cache has 200,000 blobs to stat otherwise.
func (s *Store) recheck(t time.Time) (Recovery, error) {
	var r Recovery
	blobs := filepath.Join(s.root, "blobs")
	err := filepath.WalkDir(blobs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if p != blobs && fi.ModTime().Before(t.Add(-mtimeSlack)) {
				return fs.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.ModTime().Before(t.Add(-mtimeSlack)) {
			return nil
		}
		r.Checked++
		if sum, _, err := hashFile(p); err == nil && sum == d.Name() {
			return nil
		}
		r.Removed++
		return os.Remove(p)
	})
	if err != nil {
		return r, fmt.Errorf("check bodies written before a crash: %w", err)
	}
	return r, nil
}
