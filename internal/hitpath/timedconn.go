package hitpath

import (
	"io"
	"math"
	"net"
	"time"
)

// sendChunk is how much of a file one write deadline covers: a client must
// take each sendChunk bytes within the write timeout.
const sendChunk = 1 << 20

// timedConn drops a client that stops reading: each write must be taken
// within timeout, and copies from files (sendfile) go in pieces of
// sendChunk, each with its own deadline, so a big file to a slow but live
// client is not cut off while a client that reads nothing is, with its
// descriptors.
type timedConn struct {
	net.Conn
	timeout time.Duration
}

func (c *timedConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	return c.Conn.Write(p)
}

// ReadFrom keeps the kernel's sendfile for files, in pieces.
func (c *timedConn) ReadFrom(r io.Reader) (int64, error) {
	rf, ok := c.Conn.(io.ReaderFrom)
	if !ok {
		return io.Copy(struct{ io.Writer }{c}, r)
	}
	lr, limited := r.(*io.LimitedReader)
	src, left := r, int64(math.MaxInt64)
	if limited {
		src, left = lr.R, lr.N
	}
	var total int64
	var err error
	for left > 0 && err == nil {
		n := min(left, sendChunk)
		c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
		var m int64
		m, err = rf.ReadFrom(&io.LimitedReader{R: src, N: n})
		total, left = total+m, left-m
		if m < n {
			break // the end of src, or err
		}
	}
	if limited {
		lr.N = left
	}
	return total, err
}

// CloseWrite lets net/http half-close the connection as it does a TCPConn.
func (c *timedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
