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
// Lines are written as soon as no request is in flight; under steady load
// they are gathered and written within a second, or at 64 KB, so a busy
// cache does not pay a write per request. Close writes what is left.
type AccessLog struct {
	mu      sync.Mutex // guards everything below
	w       io.Writer
	pending []byte      // lines not yet written
	timer   *time.Timer // writes pending lines a second after the first
	sec     int64       // the Unix second stamp holds
	stamp   []byte      // "2006-01-02T15:04:05." for sec
}

const (
	accessLogDelay = time.Second
	accessLogBatch = 64 << 10
)

// NewAccessLog returns an AccessLog writing to w.
func NewAccessLog(w io.Writer) *AccessLog { return &AccessLog{w: w, sec: -1} }

// Record adds one request's line. idle says no other request is in flight:
// the line is written now, with the ones gathered before it.
func (l *AccessLog) Record(t time.Time, client string, status cache.Status, code int, bytes int64, url string, idle bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t = t.UTC()
	if s := t.Unix(); s != l.sec {
		l.sec, l.stamp = s, t.AppendFormat(l.stamp[:0], "2006-01-02T15:04:05.")
	}
	b := append(l.pending, l.stamp...)
	ms := t.Nanosecond() / int(time.Millisecond)
	b = append(b, byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z', ' ')
	b = append(b, client...)
	b = append(b, ' ')
	b = append(b, status...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, bytes, 10)
	b = append(b, ' ')
	b = append(b, url...)
	l.pending = append(b, '\n')
	switch {
	case idle || len(l.pending) >= accessLogBatch:
		l.writeLocked()
	case l.timer == nil:
		l.timer = time.AfterFunc(accessLogDelay, l.Flush)
	}
}

// SetWriter writes the lines gathered so far, then writes to w from now on
// (the log reopened after logrotate renamed it).
func (l *AccessLog) SetWriter(w io.Writer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writeLocked()
	l.w = w
}

// Flush writes the lines gathered so far.
func (l *AccessLog) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writeLocked()
}

func (l *AccessLog) writeLocked() {
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	if len(l.pending) > 0 {
		l.w.Write(l.pending)
		l.pending = l.pending[:0]
	}
}
