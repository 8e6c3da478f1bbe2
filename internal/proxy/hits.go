package proxy

import (
	"bufio"
	"bytes"
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

	"vzpkg2/internal/cache"
	"vzpkg2/internal/repofmt"
	"vzpkg2/internal/route"
	"vzpkg2/internal/store"
)

// The hit path. Most requests a package cache answers ask for a whole file it
// holds, and net/http's per-request work (a Request and its Header map, a
// context, deadlines, a response writer and its buffers) costs more than
// sending a small file. So every connection starts here: a plain GET or HEAD
// of a cached file that needs no upstream is read and answered in one write,
// with the headers net/http would have sent. At the first request it does not
// answer — a miss, a range, a condition, an error, anything unusual — the
// connection and the bytes read from it go to net/http, which serves it from
// then on. Requests are only consumed once answered, so net/http sees them
// exactly as the client sent them.

// hitListener accepts connections from ln, serves them on the hit path, and
// is the listener net/http serves: Accept returns the connections handed over.
type hitListener struct {
	ln      net.Listener
	h       *Handler
	srv     *http.Server // its ReadHeaderTimeout and IdleTimeout apply here too
	handed  chan net.Conn
	errc    chan error // accept errors, for net/http to handle
	done    chan struct{}
	once    sync.Once
	closing atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]struct{} // on the hit path
	wg    sync.WaitGroup        // one per connection in conns
}

func newHitListener(ln net.Listener, h *Handler, srv *http.Server) *hitListener {
	l := &hitListener{ln: ln, h: h, srv: srv, handed: make(chan net.Conn), errc: make(chan error),
		done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	go l.acceptLoop()
	return l
}

func (l *hitListener) Accept() (net.Conn, error) {
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
func (l *hitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.ln.Close()
}

func (l *hitListener) Addr() net.Addr { return l.ln.Addr() }

func (l *hitListener) acceptLoop() {
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
		c = &timedConn{Conn: c, timeout: l.h.pol.WriteTimeout}
		l.conns[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go l.serve(c)
	}
}

// shutdown closes the hit path's idle connections and waits for the answers
// under way; when ctx ends first, it closes the rest.
func (l *hitListener) shutdown(ctx context.Context) {
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
func (l *hitListener) serve(c net.Conn) {
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
	client := clientIP(c.RemoteAddr().String())
	ip := net.ParseIP(client)
	allowed := l.h.clientAllowed(ip)
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
			obj = l.h.hit(&req)
		}
		if obj == nil {
			handed = true
			unread, _ := br.Peek(br.Buffered())
			l.handOver(&batchConn{Conn: c, unread: unread, headDeadline: headDeadline})
			return
		}
		br.Discard(len(head))
		if !l.h.answerHit(c, client, &req, obj) || req.close || l.closing.Load() {
			return
		}
	}
}

// handOver gives c to net/http, or closes it when the server is shutting down.
func (l *hitListener) handOver(c net.Conn) {
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

// peekHead returns the request head at the start of br's buffer, up to and
// including the empty line that ends it, without consuming it. It returns
// bufio.ErrBufferFull when the head is longer than the buffer.
func peekHead(br *bufio.Reader) ([]byte, error) {
	scanned := 0 // bytes of whole lines already looked at
	for {
		buf, _ := br.Peek(br.Buffered())
		for {
			i := bytes.IndexByte(buf[scanned:], '\n')
			if i < 0 {
				break
			}
			line := buf[scanned : scanned+i]
			scanned += i + 1
			if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
				return buf[:scanned], nil
			}
		}
		if br.Buffered() == br.Size() {
			return nil, bufio.ErrBufferFull
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			return nil, err
		}
	}
}

// hitRequest is a request the hit path may answer.
type hitRequest struct {
	head  bool // HEAD, not GET
	close bool // the client asked to close the connection
	url   *url.URL
	t     route.Target
}

// parse reads head into r. It reports false for anything but GET or HEAD
// over HTTP/1.1 with CRLF line ends, a Host header and only headers that do
// not change the answer; net/http answers those requests.
func (r *hitRequest) parse(head []byte) bool {
	line, rest, ok := cutLine(head)
	if !ok {
		return false
	}
	method, line, _ := bytes.Cut(line, []byte{' '})
	switch string(method) {
	case http.MethodGet:
	case http.MethodHead:
		r.head = true
	default:
		return false
	}
	uri, proto, _ := bytes.Cut(line, []byte{' '})
	if string(proto) != "HTTP/1.1" || len(uri) == 0 {
		return false
	}
	host := false
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			return false
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok || !validToken(name) || !validValue(value) {
			return false
		}
		value = bytes.Trim(value, " \t")
		switch {
		case equalFoldASCII(name, "Host"):
			if host || !validHost(value) {
				return false
			}
			host = true
		case equalFoldASCII(name, "Connection"):
			for _, opt := range bytes.Split(value, []byte{','}) {
				switch opt = bytes.Trim(opt, " \t"); {
				case equalFoldASCII(opt, "close"):
					r.close = true
				case !equalFoldASCII(opt, "keep-alive"):
					return false
				}
			}
		case ignorable(name):
		default:
			return false
		}
	}
	u, err := url.ParseRequestURI(string(uri))
	if err != nil || !host {
		return false
	}
	r.url = u
	return true
}

// ignorable reports whether a request header changes nothing about the
// answer of a whole cached file.
func ignorable(name []byte) bool {
	for _, h := range []string{"User-Agent", "Accept", "Accept-Encoding", "Accept-Language", "Cache-Control", "Pragma", "Proxy-Connection"} {
		if equalFoldASCII(name, h) {
			return true
		}
	}
	return false
}

// equalFoldASCII reports whether b is s but for the case of ASCII letters.
// Header names and connection options are ASCII: bytes.EqualFold's Unicode
// folding would take "Hoſt" (U+017F) for Host, which net/http refuses.
func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lowerASCII(b[i]) != lowerASCII(s[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// validToken reports whether b is an RFC 9110 token, the syntax of a header
// name.
func validToken(b []byte) bool {
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0:
		default:
			return false
		}
	}
	return len(b) > 0
}

// cutLine cuts a CRLF-terminated line off head.
func cutLine(head []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(head, '\n')
	if i < 1 || head[i-1] != '\r' {
		return nil, nil, false
	}
	return head[:i-1], head[i+1:], true
}

// validValue reports whether v may be a header's value: no control bytes
// but tab.
func validValue[T string | []byte](v T) bool {
	for i := range len(v) {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func validHost(v []byte) bool {
	for _, c := range v {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case bytes.IndexByte([]byte("-._~:[]"), c) >= 0:
		default:
			return false
		}
	}
	return len(v) > 0
}

// hit resolves r and returns the cached file that answers it without
// upstream, or nil.
func (h *Handler) hit(r *hitRequest) store.Object {
	if !r.url.IsAbs() && r.url.Host == "" && (r.url.Path == "/" || r.url.Path == "/metrics") {
		return nil
	}
	t, cerr := h.pol.Routes.Resolve(r.url)
	if cerr != nil {
		return nil
	}
	r.t = t
	return h.cache.Hit(context.Background(), cache.Request{Key: t.Key, URLs: t.URLs, Class: repofmt.Classify(t.Path, t.Query)})
}

// answerHit sends obj whole to c with the headers http.ServeContent sends,
// logs it, and reports whether c may carry the next request.
func (h *Handler) answerHit(c net.Conn, client string, r *hitRequest, obj store.Object) bool {
	defer obj.Close()
	h.inFlight.Add(1)
	info := obj.Info()
	bp := heldBuffers.Get().(*[]byte)
	defer func() { *bp = (*bp)[:0]; heldBuffers.Put(bp) }()
	b := append((*bp)[:0], "HTTP/1.1 200 OK\r\nAccept-Ranges: bytes\r\nContent-Length: "...)
	b = strconv.AppendInt(b, info.Size, 10)
	b = append(b, "\r\nContent-Type: "...)
	b = append(b, contentType(info)...)
	if info.SHA256 != "" {
		b = append(b, "\r\nEtag: \""...)
		b = append(b, info.SHA256...)
		b = append(b, '"')
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

	if r.head || info.Size <= smallBody {
		var n int64
		if !r.head {
			n = info.Size
			start := len(b)
			b = slices.Grow(b, int(n))[:start+int(n)]
			if m, err := obj.ReadAt(b[start:], 0); int64(m) != n {
				h.log.Warn("cannot read cached file", "url", r.t.Show, "err", err)
				h.record(client, cache.Pass, http.StatusInternalServerError, 0, r.t.Show)
				return false
			}
		}
		// Logged before it leaves: a client that has the file can read its line.
		h.record(client, cache.Hit, http.StatusOK, n, r.t.Show)
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
	h.record(client, cache.Hit, http.StatusOK, n, r.t.Show)
	return err == nil && n == info.Size
}
