// Package cache is pkg-cacher's core: look a file up in the store, or fill it
// from upstream once however many clients ask, streaming the bytes to every
// waiting client as they arrive, and commit it only when it is complete.
package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"vzpkg2/internal/expect"
	"vzpkg2/internal/repofmt"
	"vzpkg2/internal/store"
)

// Status says how a request was answered; it is what the access log shows.
type Status string

// Statuses of a cache lookup.
const (
	Hit         Status = "HIT"         // served from the store without contacting upstream
	Miss        Status = "MISS"        // not cached: fetched from upstream and stored
	Joined      Status = "JOINED"      // not cached: served from a download another client started, no upstream request of its own
	Revalidated Status = "REVALIDATED" // cached copy confirmed by upstream (304)
	Expired     Status = "EXPIRED"     // cached copy was stale and upstream sent a new one
	Stale       Status = "STALE"       // cached copy was stale, upstream failed: served the old one
	Pass        Status = "PASS"        // answered without caching (errors, refusals)
)

// ErrStore is returned (wrapped) when the store cannot be read: out of
// descriptors, an I/O error. It is never taken for a miss.
var ErrStore = errors.New("cannot read the cache")

// ErrOffline is returned for a file that is not cached in offline mode.
var ErrOffline = errors.New("not cached, and offline_mode forbids contacting upstream")

// ErrMismatch is returned (wrapped) when an upstream's file is not what the
// repository metadata promises: nothing is stored and the mirror is avoided
// for that file.
var ErrMismatch = errors.New("does not match the repository metadata")

// Expecter says what a file must be and learns what metadata promises;
// *expect.Index is one.
type Expecter interface {
	Expect(key string) (expect.Sum, bool)
	// Learn reads a newly committed file with open, if it is metadata.
	Learn(key string, open func() (io.ReadCloser, error)) error
}

// Checker refuses a complete body before it is stored (a signature check,
// say); *signed.Checker is one.
type Checker interface {
	Check(key string, body io.Reader) error
}

// Fetcher gets files from upstream mirrors; *upstream.Client is one.
type Fetcher interface {
	// Get returns the first of f.URLs that answers 200 (or 304 when f.Cond
	// is set); an error wrapping a *StatusError says what upstream answered.
	Get(ctx context.Context, f Fetch) (*Response, error)
}

// Conditions make a GET conditional on the copy the cache holds.
type Conditions struct {
	LastModified time.Time
	ETag         string
}

// Fetch is one file to get.
type Fetch struct {
	URLs []string   // mirrors, tried in order
	Cond Conditions // when set, the GET is conditional on the cached copy
	// NoHTML refuses a text/html answer (a captive portal's or a mirror's
	// error page where a package was expected) and tries the next mirror.
	NoHTML bool
	// Head asks with HEAD: the answer has the headers and no body.
	Head bool
}

// StatusError is an upstream answer that is neither a body nor "not modified".
type StatusError struct {
	URL  string
	Code int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("upstream %s answered %d %s", e.URL, e.Code, http.StatusText(e.Code))
}

// Response is an upstream answer: 200 with a body, or 304.
type Response struct {
	*http.Response
	URL string // the mirror URL that answered (before redirects)
}

// Cache answers requests from a store, filling it from upstream.
type Cache struct {
	store       store.Store
	tun         atomic.Pointer[tunables] // what a reload may change
	log         *slog.Logger
	fillTimeout time.Duration
	offline     bool
	expect      Expecter
	check       Checker
	served      func(key string)
	fetched     func(key string, n int64)
	stored      func(info store.Info)
	now         func() time.Time

	mismatches atomic.Int64 // upstream files refused for not matching the metadata
	full       atomic.Bool  // the last store write failed for want of space

	mu       sync.Mutex                      // protects inflight, avoid, missing and closed
	inflight map[string]*fill                // fills under way, by key
	avoid    map[string]map[string]time.Time // by key: mirrors that sent wrong bytes, until when
	missing  map[string]missing              // by key: files every mirror said do not exist
	closed   bool                            // Close was called: no new fills

	fills    sync.WaitGroup     // fill goroutines
	stopAll  context.CancelFunc // cancels every fill
	fillBase context.Context    // parent of every fill's context
}

// Tunables are the settings a Cache takes anew while it serves (Retune):
// fills under way finish with the ones they started with.
type Tunables struct {
	VolatileTTL time.Duration // volatile files are served without revalidation this long
	NegativeTTL time.Duration // a file upstream said does not exist is not asked for again this long
	// MaxFileSize bounds a file whose size the metadata does not promise
	// (0: DefaultMaxFileSize); a promised file is bounded by its size.
	MaxFileSize int64
}

// Options configure a Cache.
type Options struct {
	Tunables
	Now         func() time.Time // the clock; nil is time.Now
	FillTimeout time.Duration    // a whole fill is abandoned after this long (0: 6 hours)
	Offline     bool             // never contact upstream
	Expect      Expecter         // checks bodies against repository metadata; nil checks nothing
	Check       Checker          // refuses bodies before they are stored; nil refuses none
	// Served is told the key of every file a client is answered with
	// (for expiry's record of use); nil is told nothing.
	Served func(key string)
	// Fetched is told the bytes of each upstream body a fill read, by key
	// (for the status page); nil is told nothing.
	Fetched func(key string, n int64)
	// Stored is told of each file stored: filled, or linked to a body
	// stored under another key; nil is told nothing.
	Stored func(info store.Info)
	Logger *slog.Logger
}

// DefaultMaxFileSize is the size bound of a file no metadata promises.
const DefaultMaxFileSize = 8 << 30

// avoidFor is how long a mirror that sent a wrong file is skipped for it.
const avoidFor = 10 * time.Minute

// New returns a Cache over s fetching with up.
func New(s store.Store, up Fetcher, o Options) *Cache {
	if o.FillTimeout == 0 {
		o.FillTimeout = 6 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	base, stop := context.WithCancel(context.Background())
	c := &Cache{
		store: s, log: o.Logger,
		fillTimeout: o.FillTimeout, offline: o.Offline, expect: o.Expect, check: o.Check, served: o.Served, fetched: o.Fetched, stored: o.Stored,
		now: o.Now, inflight: map[string]*fill{}, avoid: map[string]map[string]time.Time{}, missing: map[string]missing{},
		fillBase: base, stopAll: stop,
	}
	c.Retune(up, o.Tunables)
	return c
}

// tunables is what the Cache runs with now.
type tunables struct {
	Tunables
	up Fetcher
}

// Retune makes the Cache fetch with up and use t from now on; fills under
// way go on as they started.
func (c *Cache) Retune(up Fetcher, t Tunables) {
	if t.MaxFileSize == 0 {
		t.MaxFileSize = DefaultMaxFileSize
	}
	c.tun.Store(&tunables{Tunables: t, up: up})
}

// ErrClosed is returned for files not cached once the Cache is closed.
var ErrClosed = errors.New("pkg-cacher is shutting down")

// Close stops the fills under way (nothing of them is stored) and waits for
// them, so the store can be closed after it.
func (c *Cache) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.stopAll()
	c.fills.Wait()
}

// Request names a file: its store key, the upstream URLs to try in order and
// how the repository format says it may be cached. Head asks only for the
// file's headers: it starts no download of a file that is not cached.
type Request struct {
	Key   string
	URLs  []string
	Class repofmt.Class
	Head  bool
}

// Result is the answer to a Request: a committed Object, a Body being
// filled, or for a Head request of a file not cached, the upstream's
// headers. The caller must Close it.
type Result struct {
	Status   Status
	Object   store.Object // a committed file
	Body     *Body        // a file still arriving from upstream
	Upstream *Headers     // what upstream answered a HEAD with
}

// Headers are what upstream says of a file it was not asked to send.
type Headers struct {
	Length int64 // -1 when not given
	Info   store.Info
}

// Close releases the result.
func (r *Result) Close() error {
	if r.Object != nil {
		return r.Object.Close()
	}
	if r.Body != nil {
		r.Body.Close()
	}
	return nil
}

// Get answers req. Errors are ErrOffline, a *StatusError, or
// another upstream or store failure.
func (c *Cache) Get(ctx context.Context, req Request) (*Result, error) {
	res, err := c.get(ctx, req)
	if err == nil && c.served != nil && (res.Object != nil || res.Body != nil) {
		c.served(req.Key)
	}
	return res, err
}

func (c *Cache) get(ctx context.Context, req Request) (*Result, error) {
	obj, err := c.open(ctx, req.Key)
	if err != nil {
		return nil, err
	}
	if obj != nil && (c.offline || c.fresh(req.Class, obj.Info())) {
		return &Result{Status: Hit, Object: obj}, nil
	}
	if obj == nil && c.offline {
		return nil, ErrOffline
	}
	if obj == nil {
		if err := c.knownMissing(req.Key); err != nil {
			return nil, err
		}
	}
	if obj == nil && req.Head {
		if f := c.joinRunning(req.Key); f != nil {
			return c.wait(ctx, req, f, nil, true)
		}
		return c.head(ctx, req)
	}
	var cond Conditions
	if obj != nil {
		cond = Conditions{LastModified: obj.Info().LastModified, ETag: obj.Info().ETag}
	}
	f, joined, res := c.join(ctx, req, cond)
	if res != nil {
		return res, nil
	}
	return c.wait(ctx, req, f, obj, joined)
}

// wait returns the answer of fill f, which the caller joined (started, when
// not joined), for req; obj is the cached copy being revalidated, if any.
func (c *Cache) wait(ctx context.Context, req Request, f *fill, obj store.Object, joined bool) (*Result, error) {
	defer func() {
		if f != nil {
			c.leave(f)
		}
	}()
	select {
	case <-f.ready:
	case <-ctx.Done():
		if obj != nil {
			obj.Close()
		}
		return nil, ctx.Err()
	}
	switch {
	case f.err != nil:
		if obj != nil {
			c.log.Warn("upstream failed, serving stale copy", "key", req.Key, "err", f.err)
			return &Result{Status: Stale, Object: obj}, nil
		}
		return nil, f.err
	case f.notModified:
		if obj != nil {
			obj.Close()
		}
		obj, err := c.store.Open(ctx, req.Key)
		if err != nil {
			return nil, fmt.Errorf("reopen revalidated %q: %w", req.Key, err)
		}
		return &Result{Status: Revalidated, Object: obj}, nil
	}
	status := Miss
	switch {
	case obj != nil:
		status = Expired
		obj.Close()
	case joined:
		status = Joined
	}
	body := &Body{c: c, f: f}
	f = nil // the Body holds the reference now
	return &Result{Status: status, Body: body}, nil
}

// head answers a HEAD request for a file not cached with upstream's
// headers: a HEAD must not start a download.
func (c *Cache) head(ctx context.Context, req Request) (*Result, error) {
	resp, err := c.tun.Load().up.Get(ctx, Fetch{URLs: c.mirrors(req.Key, req.URLs), Head: true, NoHTML: req.Class == repofmt.Immutable})
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	return &Result{Status: Pass, Upstream: &Headers{Length: resp.ContentLength, Info: infoFromHeader(resp.Header)}}, nil
}

// Hit returns the committed object Get would answer req with as a Hit, or
// nil when Get would ask upstream or fail. It never contacts upstream.
func (c *Cache) Hit(ctx context.Context, req Request) store.Object {
	obj, err := c.open(ctx, req.Key)
	if err != nil || obj == nil {
		return nil
	}
	if !c.offline && !c.fresh(req.Class, obj.Info()) {
		obj.Close()
		return nil
	}
	if c.served != nil {
		c.served(req.Key)
	}
	return obj
}

// open returns the committed object for key, or nil when there is none or
// it no longer matches the repository metadata.
func (c *Cache) open(ctx context.Context, key string) (store.Object, error) {
	obj, err := c.store.Open(ctx, key)
	switch {
	case errors.Is(err, store.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrStore, err)
	case c.matches(key, obj.Info().Size, obj.Info().SHA256):
		return obj, nil
	default:
		// Replaced upstream: newer metadata promises other bytes.
		c.log.Info("cached copy no longer matches the repository metadata; fetching it again", "key", key)
		obj.Close()
	}
	return c.linked(ctx, key), nil
}

// linked returns the body the metadata promises for key when the store
// holds it under another key (another mirror, path_map name or release),
// now under key too; nil otherwise. The same bytes are never fetched twice.
func (c *Cache) linked(ctx context.Context, key string) store.Object {
	if c.expect == nil {
		return nil
	}
	want, ok := c.expect.Expect(key)
	if !ok {
		return nil
	}
	linked, err := c.store.Link(ctx, key, store.Info{SHA256: want.SHA256, Size: want.Size, Validated: c.now()})
	if err != nil {
		if !errors.Is(err, store.ErrNotExist) {
			c.log.Warn("cannot link a stored body to a new key", "key", key, "err", err)
		}
		return nil
	}
	obj, err := c.store.Open(ctx, key)
	if err != nil {
		return nil
	}
	c.log.Debug("stored already under another key", "key", key, "sha256", want.SHA256)
	if c.stored != nil {
		c.stored(linked)
	}
	c.learn(key) // an index under a new key promises files under new keys
	return obj
}

// Download is a fill under way, for the status page.
type Download struct {
	Key     string
	Written int64 // bytes received so far
	Length  int64 // the whole body's, -1 when upstream did not say
}

// Downloads lists the fills under way, by key.
func (c *Cache) Downloads() []Download {
	c.mu.Lock()
	var out []Download
	for key, f := range c.inflight {
		select {
		case <-f.ready:
		default:
			continue // no body yet
		}
		f.mu.Lock()
		out = append(out, Download{Key: key, Written: f.written, Length: f.length})
		f.mu.Unlock()
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b Download) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// Mismatches is the number of upstream files refused because they did not
// match the repository metadata.
func (c *Cache) Mismatches() int64 { return c.mismatches.Load() }

// matches reports whether a body of size and sha256 is what the metadata
// promises for key (true when nothing is promised).
func (c *Cache) matches(key string, size int64, sha256 string) bool {
	if c.expect == nil {
		return true
	}
	want, ok := c.expect.Expect(key)
	return !ok || (sha256 == want.SHA256 && (want.Size < 0 || size == want.Size))
}

// mismatch records that mirror sent a wrong file for key.
func (c *Cache) mismatch(key, mirror string, why string) error {
	c.mismatches.Add(1)
	c.avoidMirror(key, mirror)
	c.log.Warn("upstream file refused: "+why, "key", key, "mirror", mirror)
	return fmt.Errorf("%s from %s: %s: %w", key, mirror, why, ErrMismatch)
}

// avoidMirror puts mirror last for key for a while: it sent a wrong or broken file.
func (c *Cache) avoidMirror(key, mirror string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.avoid[key] == nil {
		c.avoid[key] = map[string]time.Time{}
	}
	c.avoid[key][mirror] = c.now().Add(avoidFor)
}

// mirrors are the URLs to try for key: those that recently sent a wrong file
// for it go last.
func (c *Cache) mirrors(key string, urls []string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	bad := c.avoid[key]
	if len(bad) == 0 {
		return urls
	}
	var good, later []string
	for _, u := range urls {
		if until, ok := bad[u]; ok && c.now().Before(until) {
			later = append(later, u)
		} else {
			good = append(good, u)
		}
	}
	return append(good, later...)
}

// MirrorListTTL bounds how long a metalink or mirrorlist answer is served
// without revalidation (volatile_ttl applies when it is shorter).
const MirrorListTTL = 5 * time.Second

// fresh reports whether a cached object may be served without asking upstream.
func (c *Cache) fresh(class repofmt.Class, info store.Info) bool {
	ttl := c.tun.Load().VolatileTTL
	switch class {
	case repofmt.Immutable:
		return true
	case repofmt.MirrorList:
		ttl = min(ttl, MirrorListTTL)
	}
	return c.now().Sub(info.Validated) < ttl
}

// join returns the fill under way for req.Key, starting one if there is none
// (joined: it was under way), with a reference the caller releases. When a
// fill committed while the caller was looking, it returns the fresh object
// instead.
func (c *Cache) join(ctx context.Context, req Request, cond Conditions) (f *fill, joined bool, _ *Result) {
	c.mu.Lock()
	f = c.inflight[req.Key]
	if f == nil && cond == (Conditions{}) {
		// A fill may have committed between the store lookup and now; fills
		// leave the map only after their commit, so one look settles it.
		c.mu.Unlock()
		if obj, err := c.store.Open(ctx, req.Key); err == nil {
			if c.matches(req.Key, obj.Info().Size, obj.Info().SHA256) {
				return nil, false, &Result{Status: Hit, Object: obj}
			}
			obj.Close()
		}
		c.mu.Lock()
		f = c.inflight[req.Key]
	}
	joined = f != nil
	if f == nil {
		f = newFill(req)
		if c.expect != nil {
			f.want, f.known = c.expect.Expect(req.Key)
		}
		if c.closed {
			f.err = ErrClosed
			close(f.ready)
		} else {
			c.inflight[req.Key] = f
			f.refs++ // the fill goroutine's own reference
			c.fills.Add(1)
			ctx, abandon := context.WithCancelCause(c.fillBase)
			f.abandon = abandon
			go c.run(ctx, f, cond)
		}
	}
	c.addClient(f)
	c.mu.Unlock()
	return f, joined, nil
}

// joinRunning returns the fill under way for key with a client reference,
// or nil when there is none.
func (c *Cache) joinRunning(key string) *fill {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.inflight[key]
	if f != nil {
		c.addClient(f)
	}
	return f
}

// addClient counts a client of f; c.mu is held.
func (c *Cache) addClient(f *fill) {
	f.clients++
	f.mu.Lock()
	f.refs++
	f.mu.Unlock()
}

// errAbandoned ends a fill that no client waits for any more.
var errAbandoned = errors.New("abandoned: no client waits for it, and no metadata promises it")

// leave drops a client's reference to f. When the last client leaves a fill
// of a file whose size and checksum no metadata promises, the fill is
// abandoned: nobody may want it, and an upstream could send anything for as
// long as it likes. A promised package is worth finishing: the next client
// of the fleet will ask for it.
func (c *Cache) leave(f *fill) {
	c.mu.Lock()
	f.clients--
	abandon := f.clients == 0 && !f.promised() && c.inflight[f.req.Key] == f
	if abandon {
		delete(c.inflight, f.req.Key)
	}
	c.mu.Unlock()
	if abandon {
		f.abandon(errAbandoned)
	}
	f.release()
}

// run fetches f from upstream into the store. It runs detached from any
// client: a client hanging up never breaks the fill for the others (see
// leave for when the last one does).
func (c *Cache) run(ctx context.Context, f *fill, cond Conditions) {
	defer c.fills.Done()
	defer f.abandon(nil)
	ctx, cancel := context.WithTimeout(ctx, c.fillTimeout)
	defer cancel()
	defer f.release()

	// Packages and checksum-named files are never HTML: such an answer is
	// a captive portal's or an error page, and the next mirror is tried.
	resp, err := c.fetch(ctx, f, cond)
	if err != nil {
		f.err = err
		c.rememberMissing(f.req.Key, err)
		c.forget(f)
		close(f.ready)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		f.err = c.revalidated(ctx, f.req.Key, resp.Header)
		f.notModified = f.err == nil
		c.forget(f)
		close(f.ready)
		return
	}
	w, err := c.store.Create(ctx, f.req.Key)
	if err != nil {
		c.diskFull(err)
		f.err = err
		c.forget(f)
		close(f.ready)
		return
	}
	f.w = w
	f.length = resp.ContentLength
	f.info = infoFromHeader(resp.Header)
	close(f.ready)

	n, err := c.copyBody(f, resp.Body, c.sizeBound(f))
	if c.fetched != nil {
		c.fetched(f.req.Key, n)
	}
	if err == nil && f.length >= 0 && n != f.length {
		err = fmt.Errorf("upstream %s sent %d of %d bytes", resp.URL, n, f.length)
	}
	if cause := context.Cause(ctx); errors.Is(cause, errAbandoned) {
		err = cause
	} else if err != nil {
		c.avoidMirror(f.req.Key, resp.URL)
	}
	if err == nil && f.known && (w.SHA256() != f.want.SHA256 || f.want.Size >= 0 && n != f.want.Size) {
		err = c.mismatch(f.req.Key, resp.URL, "SHA-256 "+w.SHA256()+" is not the one the metadata gives")
	}
	if err == nil && c.check != nil {
		if err = c.check.Check(f.req.Key, io.NewSectionReader(w, 0, n)); err != nil {
			c.avoidMirror(f.req.Key, resp.URL)
		}
	}
	if err == nil {
		info := f.info // readers share f.info: commit a copy
		info.Validated = c.now()
		var committed store.Info
		committed, err = w.Commit(ctx, info)
		if err == nil && c.stored != nil {
			c.stored(committed)
		}
		c.diskFull(err)
		if err == nil && c.expect != nil {
			// Before the last byte reaches the clients: apt asks for the
			// packages an index lists right after it has the index.
			c.learn(f.req.Key) // the Expecter skips what is not metadata
		}
	} else {
		w.Cancel(ctx)
	}
	switch {
	case errors.Is(err, errAbandoned):
		c.log.Debug("fill abandoned, nothing stored", "key", f.req.Key, "url", resp.URL)
	case c.diskFull(err):
	case err != nil:
		c.log.Warn("fill failed, nothing stored", "key", f.req.Key, "url", resp.URL, "err", err)
	}
	c.forget(f)
	f.finish(err)
}

// missing is a file every mirror said does not exist.
type missing struct {
	until time.Time
	err   error // what upstream answered
}

// maxMissing bounds how many missing files are remembered: the keys come
// from clients.
const maxMissing = 10000

// rememberMissing remembers for negative_ttl that the file under key does
// not exist, when err says every mirror answered 404 or 410: a fleet
// asking for it does not hammer the mirrors.
func (c *Cache) rememberMissing(key string, err error) {
	ttl := c.tun.Load().NegativeTTL
	if ttl <= 0 || !notFound(err) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.missing) >= maxMissing {
		now := c.now()
		maps.DeleteFunc(c.missing, func(_ string, m missing) bool { return !now.Before(m.until) })
		if len(c.missing) >= maxMissing {
			return
		}
	}
	c.missing[key] = missing{until: c.now().Add(ttl), err: err}
}

// knownMissing returns what upstream answered for key when that was "not
// found" less than negative_ttl ago.
func (c *Cache) knownMissing(key string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.missing[key]
	if !ok {
		return nil
	}
	if !c.now().Before(m.until) {
		delete(c.missing, key)
		return nil
	}
	return m.err
}

// notFound reports whether err is made of 404 and 410 answers only.
func notFound(err error) bool {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			if !notFound(e) {
				return false
			}
		}
		return len(joined.Unwrap()) > 0
	}
	var se *StatusError
	return errors.As(err, &se) && (se.Code == http.StatusNotFound || se.Code == http.StatusGone)
}

// diskFull reports whether err is the cache's disk being full (or out of
// quota). That is logged once, when it starts, and once when a file is
// stored again, not for every fill that fails meanwhile: serving from the
// cache goes on.
func (c *Cache) diskFull(err error) bool {
	full := errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
	switch {
	case full && c.full.CompareAndSwap(false, true):
		c.log.Error("the cache's disk is full: new files are not stored (their clients get an error) until space is freed; cached files are still served", "err", err)
	case !full && err == nil && c.full.CompareAndSwap(true, false):
		c.log.Info("the cache's disk has room again: new files are stored")
	}
	return full
}

// sizeBound is the most bytes f may receive: the size the metadata
// promises, or max_file_size.
func (c *Cache) sizeBound(f *fill) int64 {
	if f.promised() {
		return f.want.Size
	}
	return c.tun.Load().MaxFileSize
}

// fetch gets f's file from its mirrors, those that sent a wrong file last;
// a mirror announcing another size than the metadata promises, or more than
// max_file_size, is skipped before any byte reaches a client.
func (c *Cache) fetch(ctx context.Context, f *fill, cond Conditions) (*Response, error) {
	req := f.req
	urls := c.mirrors(req.Key, req.URLs)
	var errs []error
	for len(urls) > 0 {
		// Packages and checksum-named files are never HTML: such an answer is
		// a captive portal's or an error page, and the next mirror is tried.
		resp, err := c.tun.Load().up.Get(ctx, Fetch{URLs: urls, Cond: cond, NoHTML: req.Class == repofmt.Immutable})
		if err != nil {
			return nil, errors.Join(append([]error{err}, errs...)...)
		}
		switch {
		case resp.StatusCode == http.StatusNotModified || resp.ContentLength < 0:
			return resp, nil
		case f.promised() && resp.ContentLength != f.want.Size:
			errs = append(errs, c.mismatch(req.Key, resp.URL, fmt.Sprintf("Content-Length %d, the metadata gives %d", resp.ContentLength, f.want.Size)))
		case !f.promised() && resp.ContentLength > c.sizeBound(f):
			errs = append(errs, fmt.Errorf("upstream %s announces %d bytes, more than max_file_size (%d)", resp.URL, resp.ContentLength, c.sizeBound(f)))
		default:
			return resp, nil
		}
		resp.Body.Close()
		i := slices.Index(urls, resp.URL)
		urls = urls[i+1:]
	}
	return nil, errors.Join(errs...)
}

// learn lets the Expecter read a committed file.
func (c *Cache) learn(key string) {
	err := c.expect.Learn(key, func() (io.ReadCloser, error) { return c.store.Open(context.Background(), key) })
	if err != nil {
		c.log.Warn("cannot read repository metadata", "key", key, "err", err)
	}
}

// forget removes a fill from the map once its outcome is in the store, so
// that later requests look there instead of joining a finished fill.
func (c *Cache) forget(f *fill) {
	c.mu.Lock()
	delete(c.inflight, f.req.Key)
	c.mu.Unlock()
}

// copyBody writes the upstream body to the fill's writer, publishing
// progress, and fails past limit bytes.
func (c *Cache) copyBody(f *fill, body io.Reader, limit int64) (int64, error) {
	buf := make([]byte, 64<<10)
	var total int64
	for {
		n, rerr := body.Read(buf)
		if total+int64(n) > limit {
			return total, fmt.Errorf("upstream sent more than %d bytes, the most this file may have", limit)
		}
		if n > 0 {
			if _, err := f.w.Write(buf[:n]); err != nil {
				return total, fmt.Errorf("write cache file: %w", err)
			}
			total += int64(n)
			f.progress(total)
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, fmt.Errorf("upstream body: %w", rerr)
		}
	}
}

// revalidated records that upstream confirmed the cached copy of key.
func (c *Cache) revalidated(ctx context.Context, key string, h http.Header) error {
	info, err := c.store.Stat(ctx, key)
	if err != nil {
		return err
	}
	info.Validated = c.now()
	if etag := h.Get("ETag"); etag != "" {
		info.ETag = etag
	}
	return c.store.SetInfo(ctx, info)
}

func infoFromHeader(h http.Header) store.Info {
	info := store.Info{ContentType: h.Get("Content-Type"), ETag: h.Get("ETag")}
	if t, err := http.ParseTime(h.Get("Last-Modified")); err == nil {
		info.LastModified = t
	}
	return info
}

// fill is one upstream fetch shared by every client asking for its key.
type fill struct {
	req     Request
	want    expect.Sum // what the metadata says the file is, when known
	known   bool
	abandon context.CancelCauseFunc // ends the fill; nil cause when it is over
	clients int                     // clients waiting or reading; guarded by Cache.mu

	ready chan struct{} // closed when the fields below it are set

	err         error        // the fetch failed before any body byte
	notModified bool         // upstream confirmed the cached copy
	w           store.Writer // the body being written, when there is one
	length      int64        // expected body length, -1 if unknown
	info        store.Info   // headers of the new body

	mu      sync.Mutex    // protects the fields below
	written int64         // bytes of the body readable through w
	changed chan struct{} // closed and replaced whenever written or done change
	done    bool          // the body is complete or failed
	bodyErr error         // why the body failed
	refs    int           // references: the fill goroutine and each client
}

func newFill(req Request) *fill {
	return &fill{req: req, ready: make(chan struct{}), changed: make(chan struct{}), length: -1, abandon: func(error) {}}
}

// promised reports whether the metadata gives f's file's size and checksum.
func (f *fill) promised() bool { return f.known && f.want.Size >= 0 }

func (f *fill) progress(n int64) {
	f.mu.Lock()
	f.written = n
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func (f *fill) finish(err error) {
	f.mu.Lock()
	f.done, f.bodyErr = true, err
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// release drops a reference; the last one closes the writer.
func (f *fill) release() {
	f.mu.Lock()
	f.refs--
	last := f.refs == 0
	f.mu.Unlock()
	if last && f.w != nil {
		f.w.Close()
	}
}

// Body reads a file while it is being filled: bytes as soon as they are
// written (all but the last, which waits for the commit), io.EOF at the end
// of a committed body, an error if the fill failed.
type Body struct {
	c      *Cache
	f      *fill
	closed bool
}

// Length is the expected body length, or -1 when upstream did not say.
func (b *Body) Length() int64 { return b.f.length }

// Info is the new body's metadata as upstream sent it.
func (b *Body) Info() store.Info { return b.f.info }

// ReadAtContext reads bytes from offset off, waiting (until ctx is done) for
// at least one to be written there. It returns fewer than len(p) bytes when
// no more are written yet, and io.EOF at or past the end of a committed body.
func (b *Body) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	f := b.f
	for {
		f.mu.Lock()
		written, done, err, changed := f.written, f.done, f.bodyErr, f.changed
		f.mu.Unlock()
		if done && err != nil {
			return 0, err
		}
		if !done {
			// Hold the last byte back until the body is committed, so no
			// client holds a whole body of a fill that then fails.
			written--
		}
		if off < written {
			n := int64(len(p))
			if rest := written - off; rest < n {
				n = rest
			}
			n2, rerr := f.w.ReadAt(p[:n], off)
			if rerr == io.EOF && n2 > 0 {
				rerr = nil
			}
			return n2, rerr
		}
		if done {
			return 0, io.EOF
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// Close releases the body; the fill goes on for other clients.
func (b *Body) Close() {
	if !b.closed {
		b.closed = true
		b.c.leave(b.f)
	}
}
