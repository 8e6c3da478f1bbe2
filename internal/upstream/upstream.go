// Package upstream fetches files from repository mirrors: mirrors tried in
// order, conditional GETs, bounded redirects, HTML answers refused where a
// package is expected, and a stall timeout on bodies.
package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"vzpkg2/internal/cache"
)

// MaxRedirects is the number of redirect hops followed for one mirror.
const MaxRedirects = 5

// Client fetches from upstream mirrors.
type Client struct {
	http      *http.Client
	stall     time.Duration
	userAgent string
	log       *slog.Logger
	limit     *limiter // nil: no bandwidth limit
}

// Options configure a Client.
type Options struct {
	ConnectTimeout time.Duration // dialing and TLS handshake
	StallTimeout   time.Duration // no response header, or no body byte, for this long
	UserAgent      string
	Logger         *slog.Logger
	// RootCAs verifies https upstreams; nil means the system roots.
	RootCAs *x509.CertPool
	// AllowRedirect reports whether a redirect to u may be followed: a
	// mirror redirector must not lead the cache to a host its clients
	// could not name themselves. nil follows none.
	AllowRedirect func(u *url.URL) bool
	// Proxy is an HTTP proxy every upstream is reached through (https ones
	// with CONNECT); nil reaches them directly.
	Proxy *url.URL
	// Dial names the local side of upstream connections: an IP address, a
	// host name, or a network interface; "" lets the system choose.
	Dial string
	// Limit caps the bytes a second all upstream bodies together arrive at;
	// 0 is no limit.
	Limit int64
}

// New returns a Client.
func New(o Options) (*Client, error) {
	dialer := &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}
	if err := bindLocal(dialer, o.Dial); err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyURL(o.Proxy), // nil: upstreams are reached directly
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   o.ConnectTimeout,
		ResponseHeaderTimeout: o.StallTimeout,
		DisableCompression:    true, // store exactly the bytes the repository publishes
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
		TLSClientConfig:       &tls.Config{RootCAs: o.RootCAs},
	}
	c := &Client{stall: o.StallTimeout, userAgent: o.UserAgent, log: o.Logger}
	if o.Limit > 0 {
		c.limit = &limiter{rate: o.Limit}
	}
	c.http = &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		return checkRedirect(req, via, o.AllowRedirect)
	}}
	return c, nil
}

// bindLocal makes d's connections leave from local: an IP address, a host
// name (its first address), or a network interface (SO_BINDTODEVICE).
func bindLocal(d *net.Dialer, local string) error {
	if local == "" {
		return nil
	}
	if ip := net.ParseIP(local); ip != nil {
		d.LocalAddr = &net.TCPAddr{IP: ip}
		return nil
	}
	if _, err := net.InterfaceByName(local); err == nil {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) { serr = syscall.BindToDevice(int(fd), local) })
			return errors.Join(err, serr)
		}
		return nil
	}
	ips, err := net.LookupIP(local)
	if err != nil || len(ips) == 0 {
		return fmt.Errorf("interface %q is neither an address, a host name nor a network interface of this machine", local)
	}
	d.LocalAddr = &net.TCPAddr{IP: ips[0]}
	return nil
}

// limiter paces the bytes of every body it is given to rate a second
// together: each read waits until the shared schedule has room for it.
type limiter struct {
	rate int64 // bytes a second
	mu   sync.Mutex
	next time.Time // when the schedule is free again
}

// wait blocks until n more bytes fit the rate, or ctx ends.
func (l *limiter) wait(ctx context.Context, n int) error {
	l.mu.Lock()
	now := time.Now()
	start := l.next
	if start.Before(now) {
		start = now
	}
	l.next = start.Add(time.Duration(int64(n) * int64(time.Second) / l.rate))
	l.mu.Unlock()
	if d := start.Sub(now); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// SystemRootsPlus returns the system's root certificates plus those in the
// PEM file caFile.
func SystemRootsPlus(caFile string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		return nil, fmt.Errorf("system root certificates: %w", err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	return pool, nil
}

// checkRedirect follows mirror redirectors: at most MaxRedirects hops, to
// http or https URLs that allow accepts, and never from https to http (a
// file asked for over https must not be taken from a plain connection).
func checkRedirect(req *http.Request, via []*http.Request, allow func(*url.URL) bool) error {
	switch {
	case len(via) > MaxRedirects:
		return fmt.Errorf("more than %d redirects", MaxRedirects)
	case req.URL.Scheme != "http" && req.URL.Scheme != "https":
		return fmt.Errorf("redirect to unsupported scheme %q", req.URL.Scheme)
	case req.URL.Scheme == "http" && slices.ContainsFunc(via, func(r *http.Request) bool { return r.URL.Scheme == "https" }):
		return fmt.Errorf("redirect from https to plain http %s refused", req.URL.Redacted())
	case allow == nil || !allow(req.URL):
		return fmt.Errorf("redirect to %s refused: not in allowed_locations or path_map", req.URL.Redacted())
	}
	return nil
}

// Get fetches the first of f.URLs that answers 200 (or 304 when f.Cond is
// set), following redirects, and trying the next on connection errors,
// error statuses and refused HTML answers. The body stops with an error if
// the upstream sends nothing for the stall timeout. The caller closes the body. All failures are returned joined, the last one
// first; a cache.StatusError among them tells what the upstream answered.
func (c *Client) Get(ctx context.Context, f cache.Fetch) (*cache.Response, error) {
	var errs []error
	for _, u := range f.URLs {
		resp, err := c.get(ctx, u, f)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		c.log.Debug("upstream failed, trying next mirror", "url", u, "err", err)
		errs = append([]error{err}, errs...)
	}
	if len(errs) == 0 {
		return nil, errors.New("no upstream to fetch from")
	}
	return nil, errors.Join(errs...)
}

func (c *Client) get(ctx context.Context, u string, f cache.Fetch) (*cache.Response, error) {
	cond := f.Cond
	ctx, cancel := context.WithCancelCause(ctx)
	method := http.MethodGet
	if f.Head {
		method = http.MethodHead
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		cancel(nil)
		return nil, fmt.Errorf("upstream request %s: %w", u, err)
	}
	req.Header.Set("User-Agent", c.userAgent)
	if !cond.LastModified.IsZero() {
		req.Header.Set("If-Modified-Since", cond.LastModified.UTC().Format(http.TimeFormat))
	}
	if cond.ETag != "" {
		req.Header.Set("If-None-Match", cond.ETag)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		cancel(nil)
		return nil, fmt.Errorf("upstream %s: %w", u, err)
	}
	switch {
	case resp.StatusCode == http.StatusOK && f.NoHTML && isHTML(resp.Header):
		resp.Body.Close()
		cancel(nil)
		return nil, &HTMLError{URL: u, Final: resp.Request.URL.String()}
	case resp.StatusCode == http.StatusOK || (resp.StatusCode == http.StatusNotModified && cond != (cache.Conditions{})):
		resp.Body = newStallReader(resp.Body, c.stall, cancel)
		if c.limit != nil {
			resp.Body = &limitedBody{ReadCloser: resp.Body, ctx: ctx, l: c.limit}
		}
		return &cache.Response{Response: resp, URL: u}, nil
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	cancel(nil)
	return nil, &cache.StatusError{URL: u, Code: resp.StatusCode}
}

// HTMLError is an HTML page where a package was expected.
type HTMLError struct {
	URL   string // the mirror URL asked
	Final string // the URL that answered, after redirects
}

func (e *HTMLError) Error() string {
	from := ""
	if e.Final != e.URL {
		from = " (redirected to " + e.Final + ")"
	}
	return fmt.Sprintf("upstream %s%s answered an HTML page where a package was expected (a captive portal or an error page?)", e.URL, from)
}

// stallReader cancels the request when no byte arrives for d.
type stallReader struct {
	body   io.ReadCloser
	d      time.Duration
	timer  *time.Timer
	cancel context.CancelCauseFunc
}

var errStalled = errors.New("upstream stalled: no data within fetch_timeout")

func newStallReader(body io.ReadCloser, d time.Duration, cancel context.CancelCauseFunc) io.ReadCloser {
	r := &stallReader{body: body, d: d, cancel: cancel}
	if d > 0 {
		r.timer = time.AfterFunc(d, func() { cancel(errStalled) })
	}
	return r
}

func (r *stallReader) Read(p []byte) (int, error) {
	n, err := r.body.Read(p)
	if n > 0 && r.timer != nil {
		r.timer.Reset(r.d)
	}
	if err != nil && err != io.EOF && r.timer != nil && !r.timer.Stop() {
		err = fmt.Errorf("%w (%v)", errStalled, err)
	}
	return n, err
}

func (r *stallReader) Close() error {
	if r.timer != nil {
		r.timer.Stop()
	}
	err := r.body.Close()
	r.cancel(nil)
	return err
}

// isHTML reports whether a response claims to be an HTML page.
func isHTML(h http.Header) bool {
	return strings.HasPrefix(strings.ToLower(h.Get("Content-Type")), "text/html")
}

// limitedBody reads a body at the limiter's pace.
type limitedBody struct {
	io.ReadCloser
	ctx context.Context
	l   *limiter
}

func (b *limitedBody) Read(p []byte) (int, error) {
	// Small reads keep the pace smooth and the stall timer fed.
	p = p[:min(len(p), int(max(b.l.rate/8, 1024)))]
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		if werr := b.l.wait(b.ctx, n); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}
