// Package hitpath answers the requests a package cache gets most, a plain
// GET or HEAD of a whole file it holds, before net/http sees them.
//
// Its contract with net/http: every connection starts on the hit path. A
// GET or HEAD over HTTP/1.1 with CRLF line ends, one valid Host, and only
// headers that do not change a whole file's answer, for a file Hits.Hit
// returns, is answered here in one write (or a header write and sendfile),
// with the bytes net/http would send (Date aside). At the first other
// request — a miss, a range, a condition, an error, anything unusual — the
// connection goes to net/http through Listener.Accept with every byte read
// from it and not answered, so net/http sees the requests exactly as the
// client sent them and serves the connection from then on. The head the hit
// path began to read keeps its header timeout; writes to the client have a
// deadline (a client that stops reading is dropped).
package hitpath

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"vzpkg2/internal/store"
)

// Hits is what the hit path asks of the front it serves for.
type Hits interface {
	// ClientAllowed reports whether the client at ip may use the cache.
	ClientAllowed(ip net.IP) bool
	// Hit returns the cached file that answers a GET or HEAD of u without
	// upstream, with the URL to log; nil when net/http should answer.
	Hit(u *url.URL) (obj store.Object, show string)
	// Answering counts a hit in flight until its Answered.
	Answering()
	// Answered logs an answered hit; ok false is a cached file that could
	// not be read (500).
	Answered(client string, ok bool, code int, n int64, show string)
}

// Listener accepts connections from ln, serves them on the hit path, and is
// the listener net/http serves: Accept returns the connections handed over.
type Listener struct {
	ln           net.Listener
	hits         Hits
	srv          *http.Server // its ReadHeaderTimeout and IdleTimeout apply here too
	writeTimeout time.Duration
	handed       chan net.Conn
	errc         chan error // accept errors, for net/http to handle
	done         chan struct{}
	once         sync.Once
	closing      atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]struct{} // on the hit path
	wg    sync.WaitGroup        // one per connection in conns
}

// Listen serves ln's connections on the hit path for hits, handing the rest
// to srv, which must Serve the returned Listener; srv.ConnContext must be
// ConnContext. A client must take each write (each 1 MiB of a file) within
// writeTimeout, on the hit path and in net/http alike.
func Listen(ln net.Listener, hits Hits, srv *http.Server, writeTimeout time.Duration) *Listener {
	l := &Listener{ln: ln, hits: hits, srv: srv, writeTimeout: writeTimeout, handed: make(chan net.Conn), errc: make(chan error),
		done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	go l.acceptLoop()
	return l
}

func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.handed:
		return c, nil
	case err := <-l.errc:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting; the connections on the hit path stay until shutdown.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.ln.Close()
}

func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

func (l *Listener) acceptLoop() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			// net/http backs off on temporary errors before it asks again.
			select {
			case l.errc <- err:
			case <-l.done:
				return
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		l.mu.Lock()
		if l.closing.Load() {
			l.mu.Unlock()
			c.Close()
			continue
		}
		c = &timedConn{Conn: c, timeout: l.writeTimeout}
		l.conns[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go l.serve(c)
	}
}

// Shutdown closes the hit path's idle connections and waits for the answers
// under way; when ctx ends first, it closes the rest.
func (l *Listener) Shutdown(ctx context.Context) {
	l.Close()
	l.mu.Lock()
	l.closing.Store(true)
	for c := range l.conns {
		c.SetReadDeadline(time.Now()) // wakes a connection waiting for a request
	}
	l.mu.Unlock()
	idle := make(chan struct{})
	go func() { l.wg.Wait(); close(idle) }()
	select {
	case <-idle:
	case <-ctx.Done():
		l.mu.Lock()
		for c := range l.conns {
			c.Close()
		}
		l.mu.Unlock()
		<-idle
	}
}

// hitReaders are the connections' read buffers; a request head that does
// not fit goes to net/http.
var hitReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

// serve answers c's requests until one is not a hit, then hands c over.
func (l *Listener) serve(c net.Conn) {
	br := hitReaders.Get().(*bufio.Reader)
	br.Reset(c)
	handed := false
	defer func() {
		if !handed {
			c.Close()
			br.Reset(nil)
			hitReaders.Put(br)
		}
		l.mu.Lock()
		delete(l.conns, c)
		l.mu.Unlock()
		l.wg.Done()
	}()
	client, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		client = c.RemoteAddr().String()
	}
	ip := net.ParseIP(client)
	allowed := ip == nil || l.hits.ClientAllowed(ip)
	for first := true; ; first = false {
		// As net/http: the header timeout from the connection's start, the
		// idle timeout between requests.
		if !first && br.Buffered() == 0 {
			if c.SetReadDeadline(deadline(l.srv.IdleTimeout)) != nil || l.closing.Load() {
				return
			}
			if _, err := br.Peek(1); err != nil {
				return
			}
		}
		headDeadline := deadline(l.srv.ReadHeaderTimeout)
		if c.SetReadDeadline(headDeadline) != nil || br.Buffered() == 0 && l.closing.Load() {
			return
		}
		head, err := peekHead(br)
		if err != nil && err != bufio.ErrBufferFull {
			return // a timeout or a closed connection, as net/http does
		}
		var req hitRequest
		var obj store.Object
		if err == nil && allowed && req.parse(head) {
			obj, req.show = l.hits.Hit(req.url)
		}
		if obj == nil {
			handed = true
			unread, _ := br.Peek(br.Buffered())
			l.handOver(&Conn{Conn: c, unread: unread, headDeadline: headDeadline})
			return
		}
		br.Discard(len(head))
		if !l.answer(c, client, &req, obj) || req.close || l.closing.Load() {
			return
		}
	}
}

// handOver gives c to net/http, or closes it when the server is shutting down.
func (l *Listener) handOver(c net.Conn) {
	select {
	case l.handed <- c:
	case <-l.done:
		c.Close()
	}
}

// deadline is d from now, or none when d is 0.
func deadline(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

// Headers are the Content-Type and ETag a cached file is served with, by
// the hit path and by net/http alike: upstream's type, unless it had none or
// one no header may carry; the file's SHA-256 as the ETag.
func Headers(info store.Info) (contentType, etag string) {
	contentType = info.ContentType
	if contentType == "" || !validValue(contentType) {
		contentType = "application/octet-stream"
	}
	if info.SHA256 != "" {
		etag = `"` + info.SHA256 + `"`
	}
	return contentType, etag
}

// answer sends obj whole to c with the headers http.ServeContent sends,
// logs it, and reports whether c may carry the next request.
func (l *Listener) answer(c net.Conn, client string, r *hitRequest, obj store.Object) bool {
	defer obj.Close()
	l.hits.Answering()
	info := obj.Info()
	contentType, etag := Headers(info)
	bp := heldBuffers.Get().(*[]byte)
	defer func() { *bp = (*bp)[:0]; heldBuffers.Put(bp) }()
	b := append((*bp)[:0], "HTTP/1.1 200 OK\r\nAccept-Ranges: bytes\r\nContent-Length: "...)
	b = strconv.AppendInt(b, info.Size, 10)
	b = append(b, "\r\nContent-Type: "...)
	b = append(b, contentType...)
	if etag != "" {
		b = append(b, "\r\nEtag: "...)
		b = append(b, etag...)
	}
	if lm := info.LastModified; !lm.IsZero() && !lm.Equal(time.Unix(0, 0)) {
		b = append(b, "\r\nLast-Modified: "...)
		b = lm.UTC().AppendFormat(b, http.TimeFormat)
	}
	b = append(b, "\r\nX-Cache: HIT\r\nDate: "...)
	b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
	if r.close {
		b = append(b, "\r\nConnection: close"...)
	}
	b = append(b, "\r\n\r\n"...)

	if r.head || info.Size <= SmallBody {
		var n int64
		if !r.head {
			n = info.Size
			start := len(b)
			b = slices.Grow(b, int(n))[:start+int(n)]
			if m, _ := obj.ReadAt(b[start:], 0); int64(m) != n {
				l.hits.Answered(client, false, http.StatusInternalServerError, 0, r.show)
				return false
			}
		}
		// Logged before it leaves: a client that has the file can read its line.
		l.hits.Answered(client, true, http.StatusOK, n, r.show)
		*bp = b
		_, err := c.Write(b)
		return err == nil
	}
	*bp = b
	_, err := c.Write(b)
	var n int64
	if err == nil {
		var body io.Reader = io.NewSectionReader(obj, 0, info.Size)
		if f, ok := obj.(interface{ OSFile() *os.File }); ok && f.OSFile() != nil {
			if _, err = f.OSFile().Seek(0, io.SeekStart); err == nil {
				body = &io.LimitedReader{R: f.OSFile(), N: info.Size} // sendfile
			}
		}
		if err == nil {
			n, err = io.Copy(c, body)
		}
	}
	l.hits.Answered(client, true, http.StatusOK, n, r.show)
	return err == nil && n == info.Size
}
