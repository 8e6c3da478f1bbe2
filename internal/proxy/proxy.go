// Package proxy is pkg-cacher's HTTP front: it accepts apt and dnf clients in
// every supported form on one port, refuses what it must, answers from the
// cache and writes one access-log record per request.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"vzpkg2/internal/cache"
	"vzpkg2/internal/hitpath"
	"vzpkg2/internal/repofmt"
	"vzpkg2/internal/route"
	"vzpkg2/internal/store"
)

// Policy is what the front needs to know of pkg-cacher's configuration.
type Policy struct {
	Routes *route.Table // request forms to keys and upstream URLs
	// ClientAllowed reports whether a client may use the cache; nil allows
	// every client.
	ClientAllowed func(net.IP) bool
	AdminEmail    string // shown on the usage page
	// MovedText, when set, answers requests in the original pkg-cacher's
	// /pkg-cacher/ form with 410 Gone and this text (cgi_advise_to_use).
	MovedText string
}

// Handler serves clients from a Cache.
type Handler struct {
	pol      Policy
	cache    *cache.Cache
	access   *AccessLog
	log      *slog.Logger
	stats    *metrics
	inFlight atomic.Int64 // requests being answered
}

// NewHandler returns a Handler.
func NewHandler(c *cache.Cache, pol Policy, access *AccessLog, log *slog.Logger) *Handler {
	return &Handler{pol: pol, cache: c, access: access, log: log, stats: newMetrics()}
}

// ClientAllowed reports whether the client at ip may use the cache.
func (h *Handler) ClientAllowed(ip net.IP) bool {
	return ip == nil || h.pol.ClientAllowed == nil || h.pol.ClientAllowed(ip)
}

// Hit returns the cached file that answers a GET or HEAD of u without
// upstream, with the URL to log, or nil (for hitpath).
func (h *Handler) Hit(u *url.URL) (store.Object, string) {
	if isLocal(u) {
		return nil, ""
	}
	u, legacy := stripLegacy(u)
	if legacy && h.pol.MovedText != "" {
		return nil, ""
	}
	t, refused := h.pol.Routes.Resolve(u)
	if refused != nil {
		return nil, ""
	}
	return h.cache.Hit(context.Background(), request(t, false)), t.Show
}

// Answering counts a hit in flight (for hitpath).
func (h *Handler) Answering() { h.inFlight.Add(1) }

// Answered logs a hit hitpath answered.
func (h *Handler) Answered(client string, ok bool, code int, n int64, show string) {
	status := cache.Hit
	if !ok {
		h.log.Warn("cannot read cached file", "url", show)
		status = cache.Pass
	}
	h.record(client, status, code, n, show)
}

// isLocal reports whether u is one of pkg-cacher's own pages.
func isLocal(u *url.URL) bool {
	return !u.IsAbs() && u.Host == "" && (u.Path == "/" || u.Path == "/metrics")
}

// stripLegacy takes off the /pkg-cacher/ prefix of the original
// pkg-cacher's web-server mode (http://host/pkg-cacher/fedora/...), and
// says whether there was one.
func stripLegacy(u *url.URL) (*url.URL, bool) {
	rest, ok := strings.CutPrefix(u.EscapedPath(), "/pkg-cacher/")
	if !ok || u.IsAbs() || u.Host != "" || rest == "" {
		return u, false
	}
	v := *u
	v.Path, v.RawPath = "", ""
	if p, err := url.PathUnescape("/" + rest); err == nil {
		v.Path = p
		v.RawPath = "/" + rest
	}
	return &v, true
}

// request is the cache request for t.
func request(t route.Target, head bool) cache.Request {
	return cache.Request{Key: t.Key, URLs: t.URLs, Class: repofmt.Classify(t.Path, t.Query), Head: head}
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cw := &countingWriter{ResponseWriter: w, conn: hitpath.ConnOf(r.Context())}
	status, show := cache.Pass, r.RequestURI
	h.inFlight.Add(1)
	// Deferred, so an aborted response is logged too. A small response
	// leaves after its record: a client that has it can read its log line.
	defer func() {
		h.record(clientIP(r.RemoteAddr), status, cw.code(), cw.n, show)
		if cw.conn != nil {
			cw.conn.Send()
		}
	}()
	status, show = h.serve(cw, r)
}

// record logs an answered request and counts it; the request was counted
// in flight.
func (h *Handler) record(client string, status cache.Status, code int, n int64, show string) {
	idle := h.inFlight.Add(-1) == 0
	h.access.Record(time.Now(), client, status, code, n, show, idle)
	h.stats.record(status, n)
}

// serve answers r and returns what the access log records.
func (h *Handler) serve(w *countingWriter, r *http.Request) (cache.Status, string) {
	if ip := net.ParseIP(clientIP(r.RemoteAddr)); !h.ClientAllowed(ip) {
		writeRefusal(w, route.Refuse(http.StatusForbidden, "client "+ip.String()+" is not in allowed_hosts"))
		return cache.Pass, r.RequestURI
	}
	if r.Method == http.MethodConnect {
		writeRefusal(w, route.Refuse(http.StatusMethodNotAllowed, "CONNECT is refused: pkg-cacher caches repositories; use http:// URLs or http://cacher:3142/HTTPS///host/path for https upstreams"))
		return cache.Pass, r.RequestURI
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeRefusal(w, route.Refuse(http.StatusMethodNotAllowed, "only GET and HEAD are supported"))
		return cache.Pass, r.RequestURI
	}
	if len(r.TransferEncoding) > 0 || r.ContentLength > 0 {
		// apt and dnf send none. With both Content-Length and
		// Transfer-Encoding, where the next request starts is in doubt
		// (RFC 9112 §6.1): the connection is closed after the answer.
		w.Header().Set("Connection", "close")
		writeRefusal(w, route.Refuse(http.StatusBadRequest, "a GET or HEAD request with a body is refused"))
		return cache.Pass, r.RequestURI
	}
	if isLocal(r.URL) {
		if r.URL.Path == "/" {
			h.usage(w, r)
		} else {
			h.stats.serve(w, h.cache)
		}
		return cache.Pass, r.RequestURI
	}
	u, legacy := stripLegacy(r.URL)
	if legacy && h.pol.MovedText != "" {
		writeRefusal(w, route.Refuse(http.StatusGone, h.pol.MovedText))
		return cache.Pass, r.RequestURI
	}
	t, cerr := h.pol.Routes.Resolve(u)
	if cerr != nil {
		writeRefusal(w, cerr)
		return cache.Pass, r.RequestURI
	}
	res, err := h.cache.Get(r.Context(), request(t, r.Method == http.MethodHead))
	if err != nil {
		h.fail(w, t, err)
		return cache.Pass, t.Show
	}
	defer res.Close()
	w.Header().Set("X-Cache", string(res.Status))
	switch {
	case res.Object != nil:
		serveObject(w, r, res.Object)
	case res.Body != nil:
		h.stream(w, r, t, res.Body)
	default:
		serveHeaders(w, res.Upstream)
	}
	return res.Status, t.Show
}

// serveObject serves a committed file: Range, conditional requests and HEAD
// come from http.ServeContent, the copy from the kernel's sendfile.
func serveObject(w http.ResponseWriter, r *http.Request, obj store.Object) {
	info := obj.Info()
	contentType, etag := hitpath.Headers(info)
	w.Header().Set("Content-Type", contentType)
	if etag != "" {
		w.Header().Set("ETag", etag)
	}
	var content io.ReadSeeker = obj
	if f, ok := obj.(interface{ OSFile() *os.File }); ok && f.OSFile() != nil {
		content = f.OSFile()
	}
	http.ServeContent(w, r, "", info.LastModified, content)
}

// serveHeaders answers a HEAD request with what upstream said of the file.
func serveHeaders(w http.ResponseWriter, up *cache.Headers) {
	setContentType(w, up.Info)
	if up.Length >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(up.Length, 10))
	}
	if lm := up.Info.LastModified; !lm.IsZero() {
		w.Header().Set("Last-Modified", lm.UTC().Format(http.TimeFormat))
	}
	w.WriteHeader(http.StatusOK)
}

// stream sends a file while it arrives from upstream. When its length is
// known, http.ServeContent answers Range (single, suffix, open-ended and
// multi-range), If-Range and conditional requests as for a committed file,
// reading bytes already written and waiting for the rest. If the fill fails
// the response is aborted, so the client never takes a short body for a
// whole one.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request, t route.Target, b *cache.Body) {
	info := b.Info()
	setContentType(w, info)
	fw := flushWriter{ResponseWriter: w, rc: http.NewResponseController(w)}
	body := &fillReader{ctx: r.Context(), body: b}
	if b.Length() >= 0 {
		http.ServeContent(fw, r, "", info.LastModified, body)
	} else {
		// Without a length (a chunked upstream answer) ranges cannot be
		// resolved before the end: the whole body is sent as it arrives.
		if !info.LastModified.IsZero() {
			w.Header().Set("Last-Modified", info.LastModified.UTC().Format(http.TimeFormat))
			if ims, err := http.ParseTime(r.Header.Get("If-Modified-Since")); err == nil && !info.LastModified.Truncate(time.Second).After(ims) {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			io.Copy(fw, body)
		}
	}
	if body.err != nil {
		h.log.Warn("aborting response: upstream transfer failed", "url", t.Show, "err", body.err)
		panic(http.ErrAbortHandler)
	}
}

// fillReader is a cache.Body as an io.ReadSeeker for http.ServeContent: the
// end is the length upstream announced, and Read waits, until the client
// goes away, for bytes not yet written.
type fillReader struct {
	ctx  context.Context // the client's request
	body *cache.Body
	off  int64
	err  error // the fill's failure, once a Read met it
}

func (r *fillReader) Read(p []byte) (int, error) {
	n, err := r.body.ReadAtContext(r.ctx, p, r.off)
	r.off += int64(n)
	if err != nil && err != io.EOF && r.ctx.Err() == nil {
		r.err = err
	}
	return n, err
}

func (r *fillReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.body.Length()
	}
	if offset < 0 {
		return 0, errors.New("seek before the start of the body")
	}
	r.off = offset
	return offset, nil
}

// flushWriter flushes every write, so a client gets a body still arriving
// from upstream as it arrives, not when a buffer fills. It hides
// io.ReaderFrom on purpose: copies go through Write.
type flushWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
}

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.ResponseWriter.Write(p)
	if err == nil {
		err = f.rc.Flush()
	}
	return n, err
}

func setContentType(w http.ResponseWriter, info store.Info) {
	contentType, _ := hitpath.Headers(info)
	w.Header().Set("Content-Type", contentType)
}

// fail answers a request the cache could not serve.
func (h *Handler) fail(w http.ResponseWriter, t route.Target, err error) {
	var se *cache.StatusError
	switch {
	case errors.Is(err, cache.ErrClosed):
		writeRefusal(w, route.Refuse(http.StatusServiceUnavailable, t.Show+": pkg-cacher is shutting down"))
	case errors.Is(err, cache.ErrStore):
		h.log.Error("cannot read the cache", "url", t.Show, "err", err)
		writeRefusal(w, route.Refuse(http.StatusServiceUnavailable, t.Show+": pkg-cacher cannot read its cache now; try again later"))
	case errors.Is(err, cache.ErrOffline):
		writeRefusal(w, route.Refuse(http.StatusServiceUnavailable, t.Show+" is not cached and offline_mode is on"))
	case errors.As(err, &se) && se.Code >= 400 && se.Code < 500:
		writeRefusal(w, route.Refuse(se.Code, t.Show+": "+se.Error()))
	case errors.Is(err, context.Canceled):
		// The client went away while waiting.
	case errors.Is(err, context.DeadlineExceeded):
		writeRefusal(w, route.Refuse(http.StatusGatewayTimeout, t.Show+": upstream timed out"))
	default:
		h.log.Warn("upstream failed", "url", t.Show, "err", err)
		writeRefusal(w, route.Refuse(http.StatusBadGateway, t.Show+": "+firstLine(err.Error())))
	}
}

func firstLine(s string) string {
	for i := range len(s) {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}

func writeRefusal(w http.ResponseWriter, e *route.Refusal) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Code)
	fmt.Fprintln(w, e.Reason)
}

// clientIP is the host of a client's address.
func clientIP(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// countingWriter records the status and body bytes of a response. It keeps
// io.ReaderFrom, so http.ServeContent still reaches sendfile.
type countingWriter struct {
	http.ResponseWriter
	conn   *hitpath.Conn // the client's connection; nil outside hitpath.Listener
	status int
	n      int64
}

func (c *countingWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) ReadFrom(src io.Reader) (int64, error) {
	if lr, ok := src.(*io.LimitedReader); ok && lr.N <= hitpath.SmallBody {
		return c.copySmall(lr)
	}
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.(io.ReaderFrom).ReadFrom(src)
	c.n += n
	return n, err
}

var smallBuffers = sync.Pool{New: func() any { return new([hitpath.SmallBody]byte) }}

// copySmall sends the at most hitpath.SmallBody bytes of lr with the headers in one
// write to the connection: through net/http's buffers into the hitpath.Conn,
// which ServeHTTP sends after the access-log record.
func (c *countingWriter) copySmall(lr *io.LimitedReader) (int64, error) {
	buf := smallBuffers.Get().(*[hitpath.SmallBody]byte)
	defer smallBuffers.Put(buf)
	n, err := io.ReadFull(lr, buf[:lr.N])
	if err == io.ErrUnexpectedEOF {
		err = nil // io.CopyN reports the short copy
	}
	if n > 0 {
		if c.conn != nil {
			c.conn.Gather() // sent by ServeHTTP
		}
		_, werr := c.Write(buf[:n])
		if werr == nil && c.conn != nil {
			werr = http.NewResponseController(c.ResponseWriter).Flush()
		}
		if werr != nil {
			return int64(n), werr
		}
	}
	return int64(n), err
}

func (c *countingWriter) code() int {
	if c.status == 0 {
		return http.StatusOK
	}
	return c.status
}

// Unwrap lets http.ResponseController reach the connection.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
