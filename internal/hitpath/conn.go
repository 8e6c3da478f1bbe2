package hitpath

import (
	"context"
	"io"
	"net"
	"sync"
	"time"
)

// SmallBody is the size up to which a body is sent in one write with its
// headers rather than by sendfile: for small files one write costs less
// than a header write followed by sendfile.
const SmallBody = 64 << 10

// Conn is a connection net/http serves, as the hit path hands it over.
// It returns the bytes the hit path read and did not answer before reading
// more, and lets a handler gather its writes and send them as one: net/http
// writes a response's headers and the first 4 KB of a body separately from
// the rest, and each write to a TCP socket with TCP_NODELAY is a segment of
// its own and a wake-up of the client. net/http writes to a connection from
// one goroutine at a time.
type Conn struct {
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
func (c *Conn) SetReadDeadline(t time.Time) error {
	if !c.headDeadline.IsZero() {
		if t.IsZero() {
			c.headDeadline = time.Time{}
		} else if t.After(c.headDeadline) {
			t = c.headDeadline
		}
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *Conn) Read(p []byte) (int, error) {
	if len(c.unread) > 0 {
		n := copy(p, c.unread)
		c.unread = c.unread[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// heldBuffers are the buffers of the responses being gathered or answered
// on the hit path: an idle keep-alive connection keeps none.
var heldBuffers = sync.Pool{New: func() any { b := make([]byte, 0, SmallBody+4<<10); return &b }}

func (c *Conn) Write(p []byte) (int, error) {
	if c.held != nil {
		*c.held = append(*c.held, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// Gather holds the writes that follow until Send.
func (c *Conn) Gather() {
	if c.held == nil {
		c.held = heldBuffers.Get().(*[]byte)
		*c.held = (*c.held)[:0]
	}
}

// Send writes what was held in one write.
func (c *Conn) Send() error {
	b := c.held
	if b == nil {
		return nil
	}
	c.held = nil
	var err error
	if len(*b) > 0 {
		_, err = c.Conn.Write(*b)
	}
	if cap(*b) <= SmallBody+8<<10 {
		*b = (*b)[:0]
		heldBuffers.Put(b)
	}
	return err
}

// ReadFrom keeps sendfile for the bodies net/http copies from files.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if err := c.Send(); err != nil {
		return 0, err
	}
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(c.Conn, r)
}

// CloseWrite lets net/http half-close the connection as it does a TCPConn.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

type connKey struct{}

// ConnContext is the http.Server's ConnContext: handlers find their Conn.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if bc, ok := c.(*Conn); ok {
		return context.WithValue(ctx, connKey{}, bc)
	}
	return ctx
}

// ConnOf is the Conn of a request's context, or nil.
func ConnOf(ctx context.Context) *Conn {
	bc, _ := ctx.Value(connKey{}).(*Conn)
	return bc
}
