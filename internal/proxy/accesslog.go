package proxy

import (
	"fmt"
	"io"
	"sync"
	"time"

	"vzpkg2/internal/cache"
)

// AccessLog writes one line per request:
//
//	2026-11-28T06:50:00.123Z 10.0.0.5 HIT 200 1234 http://deb.debian.org/debian/pool/...
//
// time (UTC), client address, cache status, HTTP status, body bytes sent, URL.
type AccessLog struct {
	mu sync.Mutex // serialises writes to w
	w  io.Writer
}

// NewAccessLog returns an AccessLog writing to w.
func NewAccessLog(w io.Writer) *AccessLog { return &AccessLog{w: w} }

// Record writes one request's line.
func (l *AccessLog) Record(t time.Time, client string, status cache.Status, code int, bytes int64, url string) {
	line := fmt.Sprintf("%s %s %s %d %d %s\n", t.UTC().Format("2006-01-02T15:04:05.000Z"), client, status, code, bytes, url)
	l.mu.Lock()
	l.w.Write([]byte(line))
	l.mu.Unlock()
}
