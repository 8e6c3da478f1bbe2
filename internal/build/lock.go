package build

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

	"vzpkg2/internal/tmpl"
)

// One writer per template: create, update and remove of template NAME in
// DIR hold an exclusive flock(2) on DIR/.NAME.lock for the whole operation,
// from before they look at the published files until after they are done
// with them. The lock file is never removed (removing it would let two runs
// lock two different files of one name) and is not part of the template;
// it holds the process ID of the run that last took it, for the message of a
// run that has to wait. The kernel releases the lock when its holder dies,
// however it dies, and the descriptor is close-on-exec: no child keeps it.

// lockPollInterval is how often a waiting run tries the lock again.
const lockPollInterval = 100 * time.Millisecond

// lockTemplate takes the lock of template name in dir, creating dir when it
// is missing. When another run holds it, it fails at once with opt.NoWait;
// otherwise it says so on opt.Waiting and waits until the lock is free or
// ctx is done. Then it finishes a publish that a killed run left half done
// (see publish). The returned function releases the lock.
func lockTemplate(ctx context.Context, name string, opt Options) (unlock func(), err error) {
	if err := tmpl.CheckName(name); err != nil {
		return nil, err
	}
	if err := mkdirCache(opt.CacheDir); err != nil {
		return nil, err
	}
	path := filepath.Join(opt.CacheDir, "."+name+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	if err := f.Chmod(0o644); err != nil { // whatever the umask
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	fd := int(f.Fd())
	for waited := false; ; waited = true {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !waited {
			holder := "pid " + holderPID(f)
			if opt.NoWait {
				f.Close()
				return nil, fmt.Errorf("another vzpkg run (%s) is working on %s in %s; not waiting (--no-wait)", holder, name, opt.CacheDir)
			}
			if opt.Waiting != nil {
				fmt.Fprintf(opt.Waiting, "vzpkg: waiting for another vzpkg run (%s) working on %s in %s to finish\n", holder, name, opt.CacheDir)
			}
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(lockPollInterval):
		}
	}
	if err := errors.Join(f.Truncate(0), writeAt(f, strconv.Itoa(os.Getpid())+"\n")); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := recoverPublish(opt.CacheDir, name); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
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
