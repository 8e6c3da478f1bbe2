package proxy

import (
	"io"
	"strconv"
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
	mu  sync.Mutex // serialises writes to w and use of buf
	w   io.Writer
	buf []byte
}

// NewAccessLog returns an AccessLog writing to w.
func NewAccessLog(w io.Writer) *AccessLog { return &AccessLog{w: w} }

// Record writes one request's line, with one write.
func (l *AccessLog) Record(t time.Time, client string, status cache.Status, code int, bytes int64, url string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := t.UTC().AppendFormat(l.buf[:0], "2006-01-02T15:04:05.000Z")
	b = append(b, ' ')
	b = append(b, client...)
	b = append(b, ' ')
	b = append(b, status...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, bytes, 10)
	b = append(b, ' ')
	b = append(b, url...)
	b = append(b, '\n')
	l.w.Write(b)
	l.buf = b
}
