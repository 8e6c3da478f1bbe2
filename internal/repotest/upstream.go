package repotest

import (
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Middleware wraps the serving of one request: it may write its own response
// (a failure, a stall, a connection dropped mid-body with
// panic(http.ErrAbortHandler)) or call next.ServeHTTP to serve the file.
type Middleware func(w http.ResponseWriter, r *http.Request, next http.Handler)

// Upstream is a real HTTP server on 127.0.0.1 serving a directory with
// http.FileServer semantics (Last-Modified, If-Modified-Since, Range), and
// recording every request it receives. It is safe for concurrent use.
type Upstream struct {
	srv    *httptest.Server
	files  http.Handler
	caFile string // PEM of the TLS certificate; empty for plain http

	mu       sync.Mutex // protects the fields below
	requests []string   // "METHOD /path" in arrival order
	hook     Middleware
}

// NewUpstream starts an Upstream serving root; it is closed when the test
// ends.
func NewUpstream(t testing.TB, root string) *Upstream {
	t.Helper()
	u := &Upstream{files: http.FileServer(http.Dir(root))}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serveHTTP))
	t.Cleanup(u.srv.Close)
	return u
}

// NewTLSUpstream starts an Upstream like NewUpstream that speaks https with
// a self-signed certificate for 127.0.0.1, trusted by no one until told by
// CAFile.
func NewTLSUpstream(t testing.TB, root string) *Upstream {
	t.Helper()
	u := &Upstream{files: http.FileServer(http.Dir(root))}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(u.serveHTTP))
	// Handshakes refused by clients that do not trust the certificate are
	// expected in tests; they are not worth a log line.
	u.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	u.srv.StartTLS()
	t.Cleanup(u.srv.Close)
	u.caFile = filepath.Join(t.TempDir(), "upstream-ca.pem")
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: u.srv.Certificate().Raw})
	writeFile(t, u.caFile, cert, 0o644)
	return u
}

// CAFile returns the path of a PEM file holding a TLS Upstream's certificate,
// which is its own CA.
func (u *Upstream) CAFile() string {
	return u.caFile
}

func (u *Upstream) serveHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.requests = append(u.requests, r.Method+" "+r.URL.Path)
	hook := u.hook
	u.mu.Unlock()
	if hook == nil {
		u.files.ServeHTTP(w, r)
		return
	}
	hook(w, r, u.files)
}

// SetHandler installs m to serve every following request; nil restores
// normal serving. Requests are counted whatever m does.
func (u *Upstream) SetHandler(m Middleware) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.hook = m
}

// URL returns the server's base URL, "http://127.0.0.1:<port>" (https for a
// TLS Upstream), without a trailing slash.
func (u *Upstream) URL() string {
	return u.srv.URL
}

// HostPort returns the server's address, "127.0.0.1:<port>".
func (u *Upstream) HostPort() string {
	return u.srv.Listener.Addr().String()
}

// Requests returns the requests received so far, each as "METHOD /path"
// (the decoded URL path, without the query), in arrival order.
func (u *Upstream) Requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.requests...)
}

// Count returns how many requests of any method were received for the URL
// path p, e.g. "/dists/stable/InRelease".
func (u *Upstream) Count(p string) int {
	return u.count(func(path string) bool { return path == p })
}

// CountSuffix returns how many requests of any method were received for URL
// paths ending in suffix, e.g. ".deb".
func (u *Upstream) CountSuffix(suffix string) int {
	return u.count(func(path string) bool { return strings.HasSuffix(path, suffix) })
}

// CountContains returns how many requests of any method were received for
// URL paths containing s, e.g. "/by-hash/".
func (u *Upstream) CountContains(s string) int {
	return u.count(func(path string) bool { return strings.Contains(path, s) })
}

func (u *Upstream) count(match func(path string) bool) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, req := range u.requests {
		_, path, _ := strings.Cut(req, " ")
		if match(path) {
			n++
		}
	}
	return n
}

// Reset forgets the requests received so far.
func (u *Upstream) Reset() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.requests = nil
}
