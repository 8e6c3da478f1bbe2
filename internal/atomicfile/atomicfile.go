// Package atomicfile provides the durability step shared by everything that
// publishes a file by rename: syncing the directory that holds the new name.
package atomicfile

import (
	"errors"
	"os"
)

// SyncDir fsyncs dir, so that renames into it survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
