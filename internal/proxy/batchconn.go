package proxy

import (
	"context"
	"io"
	"net"
	"sync"
	"time"
)

// batchConn is a connection net/http serves, as the hit path hands it over.
// It returns the bytes the hit path read and did not answer before reading
// more, and lets a handler gather its writes and send them as one: net/http
// writes a response's headers and the first 4 KB of a body separately from
// the rest, and each write to a TCP socket with TCP_NODELAY is a segment of
// its own and a wake-up of the client. net/http writes to a connection from
// one goroutine at a time.
type batchConn struct {
	net.Conn
	unread []byte  // read by the hit path, not answered there
	held   *[]byte // writes since gather; nil when not gathering
	// headDeadline is when the head the hit path began reading must be in:
	// net/http's header timeout for it starts afresh, and must not extend
	// it. Zero once net/http has the head.
	headDeadline time.Time
}

// SetReadDeadline keeps the deadline of a head the hit path began to read.
// net/http sets none (the zero time) once it has read a head.
func (c *batchConn) SetReadDeadline(t time.Time) error {
	if !c.headDeadline.IsZero() {
		if t.IsZero() {
			c.headDeadline = time.Time{}
		} else if t.After(c.headDeadline) {
			t = c.headDeadline
		}
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *batchConn) Read(p []byte) (int, error) {
	if len(c.unread) > 0 {
		n := copy(p, c.unread)
		c.unread = c.unread[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// heldBuffers are the buffers of the responses being gathered or answered
// on the hit path: an idle keep-alive connection keeps none.
var heldBuffers = sync.Pool{New: func() any { b := make([]byte, 0, smallBody+4<<10); return &b }}

func (c *batchConn) Write(p []byte) (int, error) {
	if c.held != nil {
		*c.held = append(*c.held, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// gather holds the writes that follow until send.
func (c *batchConn) gather() {
	if c.held == nil {
		c.held = heldBuffers.Get().(*[]byte)
		*c.held = (*c.held)[:0]
	}
}

// send writes what was held in one write.
func (c *batchConn) send() error {
	b := c.held
	if b == nil {
		return nil
	}
	c.held = nil
	var err error
	if len(*b) > 0 {
		_, err = c.Conn.Write(*b)
	}
	if cap(*b) <= smallBody+8<<10 {
		*b = (*b)[:0]
		heldBuffers.Put(b)
	}
	return err
}

// ReadFrom keeps sendfile for the bodies net/http copies from files.
func (c *batchConn) ReadFrom(r io.Reader) (int64, error) {
	if err := c.send(); err != nil {
		return 0, err
	}
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(c.Conn, r)
}

// CloseWrite lets net/http half-close the connection as it does a TCPConn.
func (c *batchConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

type connKey struct{}

// withConn is an http.Server's ConnContext: handlers find their batchConn.
func withConn(ctx context.Context, c net.Conn) context.Context {
	if bc, ok := c.(*batchConn); ok {
		return context.WithValue(ctx, connKey{}, bc)
	}
	return ctx
}

func connOf(ctx context.Context) *batchConn {
	bc, _ := ctx.Value(connKey{}).(*batchConn)
	return bc
}
