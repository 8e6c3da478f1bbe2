// Package cacheserver assembles pkg-cacher from its configuration: the
// disk store, the upstream client, what metadata promises, the signature
// checker, the cache, the access log and the HTTP front with its fast path
// for hits; and runs it until its context ends, then shuts it down.
package cacheserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"vzpkg2/internal/cache"
	"vzpkg2/internal/cacheconf"
	"vzpkg2/internal/cachekey"
	"vzpkg2/internal/expect"
	"vzpkg2/internal/expire"
	"vzpkg2/internal/hitpath"
	"vzpkg2/internal/proxy"
	"vzpkg2/internal/signed"
	"vzpkg2/internal/store"
	"vzpkg2/internal/store/disk"
	"vzpkg2/internal/upstream"
)

// Version is reported to upstreams in the User-Agent.
const Version = "0.1.0"

// Server is a configured pkg-cacher: store, cache and HTTP front.
type Server struct {
	cfg     *cacheconf.Config
	store   *disk.Store
	cache   *cache.Cache
	access  *proxy.AccessLog
	handler *proxy.Handler
	logFile *os.File // access.log, nil when logging to stderr
	http    *http.Server
	log     *slog.Logger
	expect  *expect.Index // checksums the cached metadata promises
	up      *upstream.Client
	usage   *expire.Usage // when each cached file was last asked for
	serves  atomic.Uint64 // files clients were answered with
	started time.Time     // files stored since are counted as they are stored

	mu   sync.Mutex // guards cfg and logFile, which Reload and ReopenLog replace, and disk
	disk proxy.Disk // the status page's view of the disk, kept by learning, fills and passes
}

// New loads cfg's extra CA certificates, opens the store (cleaning
// leftovers of a crash) and the access log named by cfg.
func New(cfg *cacheconf.Config, log *slog.Logger) (*Server, error) {
	up, err := newUpstream(cfg, log)
	if err != nil {
		return nil, err
	}
	st, err := disk.Open(cfg.CacheDir)
	if err != nil {
		return nil, err
	}
	if r := st.Recovery(); r.Checked > 0 {
		log.Warn("the cache was not closed cleanly: the files written in its last second were checked", "checked", r.Checked, "torn_removed", r.Removed)
	}
	s := &Server{cfg: cfg, store: st, log: log, usage: expire.NewUsage(), up: up, started: time.Now()}
	if err := s.usage.Load(UsagePath(cfg)); err != nil {
		log.Warn("the record of when cached files were last used is unreadable; starting a new one", "err", err)
	}
	var accessOut io.Writer = os.Stderr
	if cfg.LogDir != "" {
		if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
			st.Close()
			return nil, fmt.Errorf("create logdir: %w", err)
		}
		s.logFile, err = os.OpenFile(filepath.Join(cfg.LogDir, "access.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("open access log: %w", err)
		}
		accessOut = s.logFile
	}
	s.access = proxy.NewAccessLog(accessOut)

	s.expect = expect.New()
	copts := cache.Options{Tunables: tunables(cfg), Served: s.served, Fetched: func(key string, n int64) { s.handler.Fetched(key, n) }, Stored: s.stored, Offline: cfg.OfflineMode, Expect: s.expect, Logger: log}
	if len(cfg.VerifySignatures) > 0 {
		checker, err := signed.Load(cfg.VerifySignatures, st)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("verify_signatures: %w", err)
		}
		copts.Check = checker
	}
	c := cache.New(st, up, copts)
	s.cache = c
	s.handler = proxy.NewHandler(c, s.policy(cfg), s.access, log)
	if err := s.handler.LoadHistory(historyPath(cfg)); err != nil {
		log.Warn("the status page's history is unreadable; starting a new one", "err", err)
	}
	s.http = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ConnContext:       hitpath.ConnContext,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	if cfg.AllowAll {
		log.Warn("allowed_locations = *: this pkg-cacher is an open proxy for any host its clients name")
	}
	return s, nil
}

// Serve answers clients on ln until ctx is done, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	defer s.close()
	hits := hitpath.Listen(ln, s.handler, s.http, s.cfg.WriteTimeout)
	defer hits.Close()
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(hits) }()
	learnCtx, stopLearning := context.WithCancel(ctx)
	learned := make(chan struct{})
	go func() { s.learnCached(learnCtx); s.collectAfterCrash(learnCtx); close(learned) }()
	defer func() { stopLearning(); <-learned }()
	if policy, err := Policy(s.cfg); err == nil && s.cfg.CleanCache && (policy.MaxAge > 0 || policy.MaxSize > 0) {
		expired := make(chan struct{})
		go func() { s.expirePeriodically(learnCtx); close(expired) }()
		defer func() { stopLearning(); <-expired }()
	}
	s.log.Info("pkg-cacher serving", "addr", ln.Addr().String(), "cache_dir", s.cfg.CacheDir, "offline", s.cfg.OfflineMode)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.http.Shutdown(shutCtx)
	hits.Shutdown(shutCtx)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// learnCached reads the metadata already in the store, so that files are
// checked from the first request after a restart.
func (s *Server) learnCached(ctx context.Context) {
	byRepo, used := map[string]int64{}, int64(0)
	count := func(info store.Info) {
		if !info.Validated.Before(s.started) {
			return // stored since the start: stored counted it
		}
		byRepo[cachekey.Repository(info.Key)] += info.Size
		used += info.Size
	}
	if err := learnStore(ctx, s.store, s.expect, s.log, count); err != nil {
		if ctx.Err() == nil {
			s.log.Warn("cannot learn the checksums of the cached metadata: files are checked, and found under other names, only as their metadata is fetched again", "err", err)
		}
		return
	}
	s.mu.Lock()
	for repo, n := range s.disk.ByRepo { // stored meanwhile
		byRepo[repo] += n
	}
	s.disk.ByRepo, s.disk.Used = byRepo, s.disk.Used+used
	s.mu.Unlock()
	// Parsing the cached indexes of a large cache leaves a heap several
	// times what the checksums take: give it back to the system now rather
	// than over the next minutes.
	debug.FreeOSMemory()
	s.log.Info("checksums learned from cached metadata", "files", s.expect.Len())
}

// collectAfterCrash removes the bodies a crash left without an index entry
// (disk.Open leaves them, and says so until a collection ends), at the
// lowest priority, once serving has begun and the cached metadata is
// learned.
func (s *Server) collectAfterCrash(ctx context.Context) {
	if !s.store.Recovery().CollectDue {
		return
	}
	var n int
	var freed int64
	var err error
	lowPriority(func() { n, freed, err = s.store.GC(ctx) })
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("cannot collect the bodies no index entry names (the cache was not closed cleanly): the next expiry pass or pkg-cacher expire will", "err", err)
		}
		return
	}
	s.log.Info("collected the bodies no index entry names (the cache was new, or not closed cleanly before)", "bodies", n, "freed_bytes", freed)
}

// learnStore lets ix learn from the metadata in st, Release and repomd.xml
// files first (they say which by-hash files are indexes). It walks the
// store's index once, showing each entry to visit when it is not nil.
func learnStore(ctx context.Context, st *disk.Store, ix *expect.Index, log *slog.Logger, visit func(store.Info)) error {
	var top, rest []string
	err := st.Walk(ctx, func(info store.Info) error {
		if visit != nil {
			visit(info)
		}
		switch base := path.Base(info.Key); {
		case base == "InRelease" || base == "Release" || base == "repomd.xml":
			top = append(top, info.Key)
		case ix.IsIndex(info.Key) || strings.Contains(info.Key, "/by-hash/"):
			rest = append(rest, info.Key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, key := range append(top, rest...) {
		open := func() (io.ReadCloser, error) { return st.Open(ctx, key) }
		if err := ix.Learn(key, open); err != nil {
			log.Warn("cannot read cached repository metadata", "key", key, "err", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// newUpstream is the upstream client cfg describes.
func newUpstream(cfg *cacheconf.Config, log *slog.Logger) (*upstream.Client, error) {
	opts := upstream.Options{
		ConnectTimeout: cfg.ConnectTimeout,
		StallTimeout:   cfg.FetchTimeout,
		UserAgent:      "pkg-cacher/" + Version,
		Logger:         log,
		AllowRedirect:  cfg.AllowedURL,
		Proxy:          cfg.Proxy(),
		Dial:           cfg.Interface,
		Limit:          cfg.Limit,
	}
	if cfg.CAFile != "" {
		roots, err := upstream.SystemRootsPlus(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		opts.RootCAs = roots
	}
	return upstream.New(opts)
}

// tunables are the cache's settings cfg gives.
func tunables(cfg *cacheconf.Config) cache.Tunables {
	return cache.Tunables{VolatileTTL: cfg.VolatileTTL, NegativeTTL: cfg.NegativeTTL, MaxFileSize: cfg.MaxFileSize}
}

// policy is the front's policy cfg gives.
func (s *Server) policy(cfg *cacheconf.Config) proxy.Policy {
	return proxy.Policy{Routes: &cfg.Table, ClientAllowed: cfg.ClientAllowed, AdminEmail: cfg.AdminEmail, MovedText: cfg.CGIAdvice, Disk: s.diskStatus}
}

// historyPath is where the status page's history is kept across restarts.
func historyPath(cfg *cacheconf.Config) string { return filepath.Join(cfg.CacheDir, "history.json") }

// stored counts a file stored on the status page's disk view, until the
// next expiry pass counts exactly.
func (s *Server) stored(info store.Info) {
	s.mu.Lock()
	if s.disk.ByRepo == nil {
		s.disk.ByRepo = map[string]int64{}
	}
	s.disk.ByRepo[cachekey.Repository(info.Key)] += info.Size
	s.disk.Used += info.Size
	s.mu.Unlock()
}

// diskStatus is the status page's view of the disk.
func (s *Server) diskStatus() proxy.Disk {
	cfg := s.config()
	s.mu.Lock()
	d := s.disk
	d.ByRepo = maps.Clone(d.ByRepo)
	s.mu.Unlock()
	if p, err := Policy(cfg); err == nil {
		d.Cap = p.MaxSize
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(cfg.CacheDir, &fs); err == nil {
		d.Free = int64(fs.Bavail) * int64(fs.Bsize)
	} else {
		d.Error = err.Error()
	}
	return d
}

// Reload makes the server answer by cfg from the next request on, as on
// SIGHUP: access lists, path_map and allowed_locations, the upstream proxy,
// interface and limit, TTLs and the expiry policy. Connections and
// downloads under way go on; what only a restart changes (the cache and log
// directories, the address, the user) is named in the error.
func (s *Server) Reload(cfg *cacheconf.Config) error {
	up, err := newUpstream(cfg, s.log)
	if err != nil {
		return err
	}
	s.cache.Retune(up, tunables(cfg))
	s.handler.SetPolicy(s.policy(cfg))
	s.mu.Lock()
	old, oldUp := s.cfg, s.up
	s.cfg, s.up = cfg, up
	s.mu.Unlock()
	oldUp.CloseIdle() // fills under way keep theirs
	var fixed []string
	for key, same := range map[string]bool{
		"cache_dir": cfg.CacheDir == old.CacheDir, "logdir": cfg.LogDir == old.LogDir,
		"daemon_addr": cfg.DaemonAddr == old.DaemonAddr && cfg.DaemonPort == old.DaemonPort,
		"user":        cfg.User == old.User && cfg.Group == old.Group, "offline_mode": cfg.OfflineMode == old.OfflineMode,
		"verify_signatures": slices.Equal(cfg.VerifySignatures, old.VerifySignatures),
	} {
		if !same {
			fixed = append(fixed, key)
		}
	}
	if len(fixed) > 0 {
		slices.Sort(fixed)
		return fmt.Errorf("reloaded, but %s only change with a restart", strings.Join(fixed, ", "))
	}
	return nil
}

// ReopenLog opens logdir/access.log anew (after logrotate moved it) and
// writes there from now on.
func (s *Server) ReopenLog() error {
	if s.config().LogDir == "" {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(s.config().LogDir, "access.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("reopen access log: %w", err)
	}
	s.access.SetWriter(f)
	s.mu.Lock()
	old := s.logFile
	s.logFile = f
	s.mu.Unlock()
	return old.Close()
}

// config is the configuration the server runs with now.
func (s *Server) config() *cacheconf.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// served records that a client was answered with the file under key.
func (s *Server) served(key string) {
	s.serves.Add(1)
	s.usage.Touch(key, time.Now())
}

// Expiry passes run expireEvery, the first expireFirst after the start, or
// after the duration in the environment variable expireFirstEnv (for
// benchmarks: bench/expirehot.sh).
const (
	expireFirst    = 10 * time.Minute
	expireEvery    = 6 * time.Hour
	expireFirstEnv = "PKG_CACHER_EXPIRE_FIRST"
)

// expirePeriodically runs expiry passes until ctx ends.
func (s *Server) expirePeriodically(ctx context.Context) {
	first := expireFirst
	if d, err := time.ParseDuration(os.Getenv(expireFirstEnv)); err == nil {
		first = d
	}
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		began := time.Now()
		var r expire.Report
		var err error
		lowPriority(func() {
			r, err = pass(ctx, s.config(), s.store, s.usage, began, false, newYielder(s.serves.Load))
		})
		if err != nil {
			s.log.Error("expiry pass failed", "err", err)
		} else {
			s.log.Info("expiry pass", "removed", len(r.Removed), "freed_bytes", r.Freed, "kept", r.Kept, "cache_bytes", r.Size, "seconds", time.Since(began).Seconds())
			s.mu.Lock()
			s.disk.ByRepo, s.disk.Used = r.ByRepo, r.Size
			s.disk.LastExpiry, s.disk.Removed, s.disk.Freed = time.Now(), len(r.Removed), r.Freed
			s.mu.Unlock()
		}
		if err := s.handler.SaveHistory(historyPath(s.cfg)); err != nil {
			s.log.Warn("cannot save the status page's history", "err", err)
		}
		if err := s.usage.Save(UsagePath(s.cfg)); err != nil {
			s.log.Warn("cannot save the record of when cached files were last used", "err", err)
		}
		t.Reset(expireEvery)
	}
}

func (s *Server) close() {
	if s.cache != nil {
		s.cache.Close() // before the store: no commit after it
	}
	s.mu.Lock()
	if s.up != nil {
		s.up.CloseIdle()
	}
	s.mu.Unlock()
	if err := s.usage.Save(UsagePath(s.cfg)); err != nil {
		s.log.Warn("cannot save the record of when cached files were last used", "err", err)
	}
	if s.handler != nil {
		if err := s.handler.SaveHistory(historyPath(s.cfg)); err != nil {
			s.log.Warn("cannot save the status page's history", "err", err)
		}
	}
	s.store.Close()
	if s.access != nil {
		s.access.Flush()
	}
	s.mu.Lock()
	if s.logFile != nil {
		s.logFile.Close()
	}
	s.mu.Unlock()
}

// UsagePath is where the record of when cached files were last used is kept.
func UsagePath(cfg *cacheconf.Config) string { return filepath.Join(cfg.CacheDir, "usage") }

// Policy is the expiry policy cfg gives: expire_days, and max_size in bytes
// (a percentage of cache_dir's file system turned into bytes now).
func Policy(cfg *cacheconf.Config) (expire.Policy, error) {
	p := expire.Policy{MaxAge: time.Duration(cfg.ExpireDays) * 24 * time.Hour, MaxSize: cfg.MaxSize}
	if cfg.MaxSizePercent > 0 {
		var fs unix.Statfs_t
		if err := unix.Statfs(cfg.CacheDir, &fs); err != nil {
			return p, fmt.Errorf("max_size: size of the file system of %s: %w", cfg.CacheDir, err)
		}
		p.MaxSize = int64(float64(fs.Blocks) * float64(fs.Bsize) * cfg.MaxSizePercent / 100)
	}
	return p, nil
}

// Expire runs one expiry pass over st at now (see package expire), then
// removes the bodies no key names any more: those of the files it removed,
// and those replaced by newer versions (index files) since the last pass.
func Expire(ctx context.Context, cfg *cacheconf.Config, st *disk.Store, used *expire.Usage, now time.Time, dryRun bool) (expire.Report, error) {
	return pass(ctx, cfg, st, used, now, dryRun, nil)
}

// pass is Expire, giving way to clients through y when it is not nil.
func pass(ctx context.Context, cfg *cacheconf.Config, st *disk.Store, used *expire.Usage, now time.Time, dryRun bool, y *yielder) (expire.Report, error) {
	p, err := Policy(cfg)
	if err != nil {
		return expire.Report{}, err
	}
	var es expire.Store = st
	var c *disk.Collection
	if !dryRun {
		// The pass's own walk of the index tells the collection what is
		// referenced: the index is read once.
		c = st.StartGC()
		es = collecting{st, c}
	}
	if y != nil {
		es = yielding{es, y}
	}
	r, err := expire.Run(ctx, es, used, now, p, dryRun)
	if c == nil {
		return r, err
	}
	if err != nil {
		c.Finish(nil) // ends it: blobs of the entries removed so far stay for the next pass
		return r, err
	}
	_, r.Freed, err = c.Finish(r.Removed)
	return r, err
}

// collecting is a store whose Walk counts for a collection.
type collecting struct {
	*disk.Store
	c *disk.Collection
}

func (c collecting) Walk(ctx context.Context, fn func(store.Info) error) error {
	return c.c.Walk(ctx, fn)
}
