package expire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"sync"
	"time"

	"vzpkg2/internal/atomicfile"
)

// Usage remembers when each cached file was last asked for, to the hour. It
// is safe for concurrent use; Touch costs a read lock when the hour has not
// changed, as on most of a busy cache's requests.
type Usage struct {
	mu   sync.RWMutex      // protects last
	last map[uint64]uint32 // by hash of the key: Unix hours
}

// NewUsage returns an empty Usage.
func NewUsage() *Usage { return &Usage{last: map[uint64]uint32{}} }

// usageHash is a key's hash. A collision only makes an unused file look used
// a while longer.
func usageHash(key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	return h.Sum64()
}

// Touch records that the file under key was asked for at t.
func (u *Usage) Touch(key string, t time.Time) {
	k, hour := usageHash(key), uint32(t.Unix()/3600)
	u.mu.RLock()
	last := u.last[k]
	u.mu.RUnlock()
	if last >= hour {
		return
	}
	u.mu.Lock()
	if u.last[k] < hour {
		u.last[k] = hour
	}
	u.mu.Unlock()
}

// Last returns when the file under key was last asked for, to the hour, if
// it was since the Usage began.
func (u *Usage) Last(key string) (time.Time, bool) {
	u.mu.RLock()
	hour, ok := u.last[usageHash(key)]
	u.mu.RUnlock()
	return time.Unix(int64(hour)*3600, 0), ok
}

// Forget drops what is known of key (its file is gone).
func (u *Usage) Forget(key string) {
	u.mu.Lock()
	delete(u.last, usageHash(key))
	u.mu.Unlock()
}

// record is one entry in a usage file: the key's hash and the hour.
const record = 12

// Load adds what the usage file at path holds; a missing file holds
// nothing.
func (u *Usage) Load(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read usage: %w", err)
	}
	if len(b)%record != 0 {
		return fmt.Errorf("read usage: %s is %d bytes, not a whole number of records", path, len(b))
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for ; len(b) > 0; b = b[record:] {
		k, hour := binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint32(b[8:])
		u.last[k] = max(u.last[k], hour)
	}
	return nil
}

// Save writes the usage to path, atomically.
func (u *Usage) Save(path string) error {
	u.mu.RLock()
	b := make([]byte, 0, record*len(u.last))
	for k, hour := range u.last {
		b = binary.LittleEndian.AppendUint64(b, k)
		b = binary.LittleEndian.AppendUint32(b, hour)
	}
	u.mu.RUnlock()
	if err := atomicfile.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("save usage: %w", err)
	}
	return nil
}
