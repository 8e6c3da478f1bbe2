package templatebuild

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"vzpkg2/internal/isolate"
	"vzpkg2/internal/tmpl"
)

// One writer per template: create, update and remove of template NAME in
// DIR hold an exclusive flock(2) on DIR/.NAME.lock for the whole operation,
// from before they look at the published files until after they are done
// with them. The lock file is not part of the template; it holds the
// process ID of the run that took it, for the message of a run that has to
// wait. The kernel releases the lock when its holder dies, however it dies,
// and the descriptor is close-on-exec: no child keeps it.
//
// A run removes the lock file while it still holds the lock, as it ends, so
// a cache directory holds one only while a run works there or after a run
// was killed (the next run uses it). A run waiting on the file meanwhile
// gets the lock of a file no longer at the path: it checks, after locking,
// that the file it locked is the one at the path, and opens the path again
// when it is not.

// lockPollInterval is how often a waiting run tries the lock again.
const lockPollInterval = 100 * time.Millisecond

// lockTemplate takes the lock of template name in dir, creating dir when it
// is missing. When another run holds it, it fails at once with opt.NoWait;
// otherwise it says so on opt.Waiting and waits until the lock is free or
// ctx is done. Then it finishes a publish that a killed run left half done
// (see publish) and removes the private directories killed runs left. The
// returned function releases the lock.
func lockTemplate(ctx context.Context, name string, opt Options) (unlock func(), err error) {
	if err := tmpl.CheckName(name); err != nil {
		return nil, err
	}
	if err := mkdirCache(opt.CacheDir); err != nil {
		return nil, err
	}
	path := filepath.Join(opt.CacheDir, "."+name+".lock")
	var f *os.File
	for waited := false; ; {
		if f, err = os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644); err != nil {
			return nil, fmt.Errorf("lock %s: %w", name, err)
		}
		if err := f.Chmod(0o644); err != nil { // whatever the umask
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if err := flockWait(ctx, f, name, opt, &waited); err != nil {
			f.Close()
			return nil, err
		}
		// The run we waited for removed the file on its way out, and a
		// third may have made a new one: the lock is ours only if the file
		// we locked is still the one at path.
		var held, now unix.Stat_t
		if unix.Fstat(int(f.Fd()), &held) == nil && unix.Stat(path, &now) == nil && held.Dev == now.Dev && held.Ino == now.Ino {
			break
		}
		f.Close()
	}
	if err := errors.Join(f.Truncate(0), writeAt(f, strconv.Itoa(isolate.PID())+"\n")); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := recoverPublish(opt.CacheDir, name); err != nil {
		f.Close()
		return nil, err
	}
	if err := removeStale(opt.CacheDir, name); err != nil && opt.Waiting != nil {
		fmt.Fprintf(opt.Waiting, "vzpkg: leftovers of a killed run: %v\n", err)
	}
	return func() {
		os.Remove(path) // while still holding it: see above
		f.Close()
	}, nil
}

// flockWait takes the flock of f, waiting as lockTemplate says; *waited
// records that the run already said it waits.
func flockWait(ctx context.Context, f *os.File, name string, opt Options, waited *bool) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		if !*waited {
			holder := "pid " + holderPID(f)
			if opt.NoWait {
				return fmt.Errorf("another vzpkg run (%s) is working on %s in %s; not waiting (--no-wait)", holder, name, opt.CacheDir)
			}
			if opt.Waiting != nil {
				fmt.Fprintf(opt.Waiting, "vzpkg: waiting for another vzpkg run (%s) working on %s in %s to finish\n", holder, name, opt.CacheDir)
			}
			*waited = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(lockPollInterval):
		}
	}
}

func writeAt(f *os.File, s string) error {
	_, err := f.WriteAt([]byte(s), 0)
	return err
}

// holderPID returns the process ID written in a lock file, or "?".
func holderPID(f *os.File) string {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	if pid := strings.TrimSpace(string(buf[:n])); pid != "" {
		return pid
	}
	return "?"
}

// mkdirCache creates the cache directory, mode 0755 whatever the umask, when
// it does not exist.
func mkdirCache(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.Chmod(dir, 0o755)
}

// Recover finishes a publish of template name in dir that a killed run
// committed but did not finish (see publish), so that a reader such as
// vzpkg list sees a whole set. It does nothing when there is none, and
// leaves it when another run works on the template: that run finishes it.
func Recover(ctx context.Context, dir, name string) error {
	if _, err := os.Stat(commitDir(dir, name)); err != nil {
		return nil
	}
	unlock, err := lockTemplate(ctx, name, Options{CacheDir: dir, NoWait: true})
	if err != nil {
		return err
	}
	unlock()
	return nil
}
