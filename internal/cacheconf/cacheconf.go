// Package cacheconf reads pkg-cacher's configuration: pkg-cacher.conf files in the
// original `key = value` format and `key=value` overrides from the command line.
//
// Format: package keyvalue's (one `key = value` per line, `#` comments, `\`
// continues a line, the last of a key set twice wins); list values are
// separated by `,` or `;`. Every error names the file and line it came from
// and how to fix it.
package cacheconf

import (
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"vzpkg2/internal/keyvalue"
	"vzpkg2/internal/route"
	"vzpkg2/internal/suggest"
)

// DefaultFile is read when no -c flag is given and the file exists.
const DefaultFile = "/etc/pkg-cacher/pkg-cacher.conf"

// DefaultAllowedLocations are the official mirror hosts of the distributions
// vzpkg ships templates for, so a fresh install serves their clients.
var DefaultAllowedLocations = []string{
	"deb.debian.org", "security.debian.org", "ftp.debian.org", "*.debian.org",
	"archive.ubuntu.com", "*.archive.ubuntu.com", "security.ubuntu.com", "ports.ubuntu.com",
	"dl.fedoraproject.org", "download.fedoraproject.org", "mirrors.fedoraproject.org", "*.fedoraproject.org",
	"repo.almalinux.org", "mirrors.almalinux.org", "vault.almalinux.org",
	"dl.rockylinux.org", "mirrors.rockylinux.org", "download.rockylinux.org",
	"mirror.stream.centos.org", "mirrors.centos.org",
}

// Config is pkg-cacher's effective configuration.
type Config struct {
	CacheDir         string        // where cached files live
	DaemonAddr       string        // listen address; empty means all interfaces
	DaemonPort       int           // listen port
	LogDir           string        // access.log goes here; empty logs to stderr only
	OfflineMode      bool          // serve only cached files, never contact upstream
	route.Table                    // path_map, allowed_locations
	Clients          Clients       // who may use the cache
	VolatileTTL      time.Duration // how long index files are served without revalidation
	NegativeTTL      time.Duration // how long a file upstream said does not exist is not asked for again
	FetchTimeout     time.Duration // give up on an upstream that sends no byte for this long
	WriteTimeout     time.Duration // drop a client that takes longer to accept 1 MiB (or a smaller write)
	MaxFileSize      int64         // bytes a file no metadata gives the size of may have
	ExpireDays       int           // a file unused this many days goes unless cached metadata references it; 0: never
	MaxSize          int64         // the cache's cap in bytes; 0: none (see MaxSizePercent)
	MaxSizePercent   float64       // the cap as a share of cache_dir's file system; 0: none
	ConnectTimeout   time.Duration // give up connecting to an upstream after this long
	CAFile           string        // PEM certificates trusted for https upstreams besides the system roots
	VerifySignatures []string      // OpenPGP keyrings InRelease, Release.gpg and repomd.xml.asc must verify with; empty: not checked

	// The original pkg-cacher's keys that have a meaning here.
	AdminEmail   string // shown on the usage page
	User, Group  string // serve drops to these after binding its port; empty: stays who it is
	CleanCache   bool   // serve runs expiry passes (clean_cache = 0: only pkg-cacher expire does)
	HTTPProxy    string // upstream HTTP proxy, host:port or a URL (used when UseProxy)
	UseProxy     bool
	ProxyAuth    string // user:password for HTTPProxy (used when UseProxyAuth)
	UseProxyAuth bool
	Interface    string // local address, host name or network interface for upstream connections
	Limit        int64  // upstream bytes per second for all fills together; 0: no limit
	Debug        bool   // log at debug level
	CGIAdvice    string // when set, requests in the /pkg-cacher/ form get 410 Gone with this text
	PIDFile      string // serve writes its process ID here

	// Warnings name the settings read that have no effect, with file and
	// line: serve logs them at start.
	Warnings []string
}

// Defaults returns the built-in configuration.
func Defaults() *Config {
	c := &Config{
		CacheDir:       "/var/cache/pkg-cacher",
		DaemonPort:     3142,
		LogDir:         "/var/log/pkg-cacher",
		VolatileTTL:    30 * time.Second,
		NegativeTTL:    30 * time.Second,
		FetchTimeout:   60 * time.Second,
		WriteTimeout:   60 * time.Second,
		MaxFileSize:    8 << 30,
		ExpireDays:     30,
		CleanCache:     true,
		Clients:        Clients{Allow: []AddrRange{every(false)}, Allow6: []AddrRange{every(true)}},
		ConnectTimeout: 15 * time.Second,
	}
	for _, l := range DefaultAllowedLocations {
		loc, _ := parseLocation(l)
		c.AllowedLocations = append(c.AllowedLocations, loc)
	}
	c.PathMap, _ = parsePathMap(DefaultPathMap)
	return c
}

// DefaultPathMap has the original pkg-cacher's profile names, so clients set
// up for it (http://cacher:3142/debian/...) keep working, pointed at
// today's mirrors.
const DefaultPathMap = "fedora dl.fedoraproject.org/pub/fedora/linux ; centos mirror.stream.centos.org ; " +
	"debian deb.debian.org/debian ; debian-security deb.debian.org/debian-security ; ubuntu archive.ubuntu.com/ubuntu"

// Error is a configuration error at a place in a file (or on the command
// line).
type Error = keyvalue.Error

// Load reads file (when not empty) over the defaults, then applies overrides of
// the form key=value. A missing DefaultFile is not an error.
func Load(file string, overrides []string) (*Config, error) {
	c := Defaults()
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		defer f.Close()
		if err := c.Parse(file, f); err != nil {
			return nil, err
		}
	}
	for i, o := range overrides {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			return nil, &Error{File: "command line", Msg: fmt.Sprintf("argument %d %q is not key=value (example: daemon_port=3142)", i+1, o)}
		}
		if err := c.set(keyvalue.Key(k), strings.TrimSpace(v)); err != nil {
			return nil, &Error{File: "command line", Msg: err.Error()}
		}
	}
	return c, nil
}

// Parse applies the settings in r (named name in errors) to c.
func (c *Config) Parse(name string, r io.Reader) error {
	c.Warnings = nil
	return keyvalue.Parse(name, r, c.set, func(msg string) { c.Warnings = append(c.Warnings, msg) })
}

// keys documents every key; the example config lists the same.
var keys = map[string]string{
	"cache_dir":         "directory for cached files",
	"daemon_addr":       "listen address (empty: all)",
	"daemon_port":       "listen port",
	"logdir":            "directory for access.log (empty: stderr)",
	"offline_mode":      "0 or 1",
	"path_map":          "NAME MIRROR [MIRROR...] ; NAME ...",
	"allowed_locations": "hosts or host/path prefixes, or *",
	"allowed_hosts":     "IPv4 clients allowed: addresses, CIDR networks, a-b ranges, or *",
	"denied_hosts":      "IPv4 clients refused among the allowed ones",
	"allowed_hosts_6":   "IPv6 clients allowed: addresses, CIDR networks, a-b ranges, or *",
	"denied_hosts_6":    "IPv6 clients refused among the allowed ones",
	"volatile_ttl":      "seconds (or a duration like 30s) index files are fresh",
	"negative_ttl":      "seconds a file upstream answered 404 for is answered 404 without asking again (0: always ask)",
	"fetch_timeout":     "seconds without a byte before an upstream is abandoned",
	"write_timeout":     "seconds a client may take to accept 1 MiB of an answer before it is dropped",
	"max_file_size":     "largest file fetched when no metadata gives its size (bytes, or with K, M, G, T)",
	"expire_days":       "days a file no cached metadata references may go unused before it is removed (0: never)",
	"max_size":          "the cache's size cap: bytes (with K, M, G, T) or a percentage of its file system; empty: none",
	"connect_timeout":   "seconds to connect to an upstream",
	"ca_file":           "PEM file of CA certificates trusted for https upstreams, besides the system roots",
	"verify_signatures": "OpenPGP keyring files signed metadata must be signed by (empty: no check)",

	// The original pkg-cacher's keys.
	"admin_email":       "the administrator's address, shown on the usage page",
	"user":              "user serve runs as after binding its port",
	"group":             "group serve runs as after binding its port",
	"clean_cache":       "1: serve runs expiry passes every 6 hours (0: only pkg-cacher expire does)",
	"expire_hours":      "hours an index file is fresh (0: revalidated with its headers, see volatile_ttl)",
	"http_proxy":        "upstream HTTP proxy, host:port (used with use_proxy = 1)",
	"use_proxy":         "0 or 1: fetch through http_proxy",
	"http_proxy_auth":   "user:password for http_proxy (used with use_proxy_auth = 1)",
	"use_proxy_auth":    "0 or 1: authenticate to http_proxy",
	"interface":         "local address, host name or network interface for upstream connections",
	"limit":             "upstream bytes per second for all downloads together (wget syntax: 25k, 2m); 0: none",
	"debug":             "0 or 1: log at debug level",
	"cgi_advise_to_use": "text of a 410 Gone answer to requests in the /pkg-cacher/ form (a moved cache)",
	"pidfile":           "file serve writes its process ID to",
	"generate_reports":  "accepted, no effect (the counters are live at /metrics)",
	"logfile":           "accepted, no effect (deprecated: the access log is logdir/access.log)",
	"errorfile":         "accepted, no effect (deprecated: errors go to standard error)",
}

func knownKeys() string {
	return strings.Join(slices.Sorted(maps.Keys(keys)), ", ")
}

func (c *Config) set(key, val string) error {
	var err error
	switch key {
	case "cache_dir":
		if val == "" {
			return fmt.Errorf("cache_dir is empty (give a directory, e.g. cache_dir = /var/cache/pkg-cacher)")
		}
		c.CacheDir = val
	case "daemon_addr":
		if val != "" && net.ParseIP(val) == nil && !validHostname(val) {
			return fmt.Errorf("daemon_addr %q is not an IP address or host name (e.g. daemon_addr = 127.0.0.1)", val)
		}
		c.DaemonAddr = val
	case "daemon_port":
		c.DaemonPort, err = strconv.Atoi(val)
		if err != nil || c.DaemonPort < 0 || c.DaemonPort > 65535 {
			return fmt.Errorf("daemon_port %q is not a port number 0-65535 (e.g. daemon_port = 3142)", val)
		}
	case "logdir":
		c.LogDir = val
	case "offline_mode":
		c.OfflineMode, err = parseBool(val)
		if err != nil {
			return fmt.Errorf("offline_mode %q: want 0 or 1", val)
		}
	case "path_map":
		c.PathMap, err = parsePathMap(val)
		if err != nil {
			return fmt.Errorf("path_map: %w", err)
		}
	case "allowed_locations":
		c.AllowedLocations, c.AllowAll = nil, false
		for _, item := range splitList(val) {
			if item == "*" {
				c.AllowAll = true
				continue
			}
			loc, err := parseLocation(item)
			if err != nil {
				return keyvalue.Item(item, fmt.Errorf("allowed_locations: %w", err))
			}
			c.AllowedLocations = append(c.AllowedLocations, loc)
		}
	case "allowed_hosts":
		c.Clients.Allow, err = parseRanges(val, false)
	case "denied_hosts":
		c.Clients.Deny, err = parseRanges(val, false)
	case "allowed_hosts_6":
		c.Clients.Allow6, err = parseRanges(val, true)
	case "denied_hosts_6":
		c.Clients.Deny6, err = parseRanges(val, true)
	case "volatile_ttl":
		c.VolatileTTL, err = parseSeconds(val)
	case "negative_ttl":
		c.NegativeTTL, err = parseSeconds(val)
	case "fetch_timeout":
		c.FetchTimeout, err = parseTimeout(val)
	case "connect_timeout":
		c.ConnectTimeout, err = parseTimeout(val)
	case "write_timeout":
		c.WriteTimeout, err = parseTimeout(val)
	case "max_file_size":
		c.MaxFileSize, err = parseSize(val)
	case "expire_days":
		c.ExpireDays, err = strconv.Atoi(val)
		if err != nil || c.ExpireDays < 0 {
			return fmt.Errorf("expire_days %q is not a number of days (e.g. 30; 0 keeps files for ever)", val)
		}
	case "max_size":
		c.MaxSize, c.MaxSizePercent = 0, 0
		if pct, ok := strings.CutSuffix(val, "%"); ok {
			c.MaxSizePercent, err = strconv.ParseFloat(strings.TrimSpace(pct), 64)
			if err != nil || c.MaxSizePercent <= 0 || c.MaxSizePercent > 100 {
				return fmt.Errorf("max_size %q is not a percentage from 1%% to 100%% (e.g. 80%%)", val)
			}
		} else if val != "" && val != "0" {
			c.MaxSize, err = parseSize(val)
		}
	case "ca_file":
		c.CAFile = val
	case "verify_signatures":
		c.VerifySignatures = splitList(val)
	case "admin_email":
		c.AdminEmail = val
	case "user":
		c.User = val
	case "group":
		c.Group = val
	case "clean_cache":
		c.CleanCache, err = parseBool(val)
	case "expire_hours":
		var h int
		if h, err = strconv.Atoi(val); err != nil || h < 0 {
			return fmt.Errorf("expire_hours %q is not a number of hours (0: revalidate index files by their headers)", val)
		}
		if h > 0 {
			c.VolatileTTL = time.Duration(h) * time.Hour
		}
	case "http_proxy":
		if val != "" {
			if _, err := proxyURL(val, ""); err != nil {
				return err
			}
		}
		c.HTTPProxy = val
	case "use_proxy":
		c.UseProxy, err = parseBool(val)
	case "http_proxy_auth":
		if val != "" && !strings.Contains(val, ":") {
			return fmt.Errorf("http_proxy_auth %q is not user:password", val)
		}
		c.ProxyAuth = val
	case "use_proxy_auth":
		c.UseProxyAuth, err = parseBool(val)
	case "interface":
		c.Interface = val
	case "limit":
		c.Limit, err = parseRate(val)
	case "debug":
		c.Debug, err = parseBool(val)
	case "cgi_advise_to_use":
		c.CGIAdvice = val
	case "pidfile":
		c.PIDFile = val
	case "generate_reports", "logfile", "errorfile":
		if val != "" && val != "0" {
			return &keyvalue.Warning{Msg: key + " has no effect here: " + keys[key][strings.Index(keys[key], "(")+1:len(keys[key])-1]}
		}
	default:
		return fmt.Errorf("unknown key %q%s (known keys: %s)", key, suggestKey(key), knownKeys())
	}
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// suggestKey returns ` (did you mean "x"?)` for a near miss.
func suggestKey(key string) string {
	if k := suggest.Nearest(key, slices.Sorted(maps.Keys(keys))); k != "" {
		return fmt.Sprintf(" (did you mean %q?)", k)
	}
	return ""
}

func splitList(v string) []string {
	f := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\t' })
	return f
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "1", "yes", "true", "on":
		return true, nil
	case "0", "no", "false", "off", "":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean")
}

func parseSeconds(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a number of seconds (e.g. 30) or a duration (e.g. 1m30s)", v)
	}
	return d, nil
}

// Proxy is the upstream proxy to fetch through, or nil.
func (c *Config) Proxy() *url.URL {
	if !c.UseProxy || c.HTTPProxy == "" {
		return nil
	}
	auth := ""
	if c.UseProxyAuth {
		auth = c.ProxyAuth
	}
	u, _ := proxyURL(c.HTTPProxy, auth) // checked when read
	return u
}

// proxyURL is the proxy at hostport (host:port, or an http:// URL) with the
// credentials auth (user:password; empty: none).
func proxyURL(hostport, auth string) (*url.URL, error) {
	raw := hostport
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.Port() == "" {
		return nil, fmt.Errorf("http_proxy %q is not host:port (e.g. proxy.example.com:8080)", hostport)
	}
	if user, pass, ok := strings.Cut(auth, ":"); ok {
		u.User = url.UserPassword(user, pass)
	}
	return u, nil
}

// parseRate parses wget's rate syntax: bytes per second, or with k or m
// (kilobytes, megabytes); 0 or negative is no limit.
func parseRate(v string) (int64, error) {
	num, mult := strings.ToLower(strings.TrimSpace(v)), int64(1)
	switch {
	case strings.HasSuffix(num, "k"):
		num, mult = strings.TrimSuffix(num, "k"), 1<<10
	case strings.HasSuffix(num, "m"):
		num, mult = strings.TrimSuffix(num, "m"), 1<<20
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("limit %q is not a rate (e.g. 25k or 2m bytes a second; 0 for none)", v)
	}
	return max(0, int64(f*float64(mult))), nil
}

// parseSize parses a size in bytes, with an optional K, M, G or T suffix
// (powers of 1024; a trailing B or iB is allowed).
func parseSize(v string) (int64, error) {
	num := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(v), "IB"), "B")
	shift := 0
	if i := strings.IndexAny(num, "KMGT"); i >= 0 && i == len(num)-1 {
		shift = 10 * (1 + strings.IndexByte("KMGT", num[i]))
		num = num[:i]
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("%q is not a size (e.g. 8G, 500M or 1048576)", v)
	}
	return n << shift, nil
}

// parseTimeout is parseSeconds for a timeout, which must be at least a
// second: 0 would mean never giving up.
func parseTimeout(v string) (time.Duration, error) {
	d, err := parseSeconds(v)
	if err == nil && d < time.Second {
		err = fmt.Errorf("%q is less than a second; a timeout of 0 would never give up (e.g. 60)", v)
	}
	return d, err
}

// parsePathMap parses "name mirror [mirror...] ; name ..." (entries separated
// by ';' or ',', fields by blanks). Mirrors without a scheme are http.
func parsePathMap(v string) ([]route.PathMap, error) {
	var out []route.PathMap
	seen := map[string]bool{}
	for _, entry := range strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == ',' }) {
		f := strings.Fields(entry)
		if len(f) == 0 {
			continue
		}
		item := strings.TrimSpace(entry)
		if len(f) < 2 {
			return nil, keyvalue.Item(item, fmt.Errorf("entry %q has no mirror (write: path_map = debian deb.debian.org/debian)", item))
		}
		name := f[0]
		if strings.ContainsAny(name, "/.:") {
			return nil, keyvalue.Item(item, fmt.Errorf("name %q must be one path segment without '.', ':' or '/' (it would look like a host)", name))
		}
		if seen[name] {
			return nil, keyvalue.Item(item, fmt.Errorf("name %q is mapped twice (list all its mirrors in one entry)", name))
		}
		seen[name] = true
		pm := route.PathMap{Name: name}
		for _, m := range f[1:] {
			u, err := parseMirror(m)
			if err != nil {
				return nil, keyvalue.Item(item, err)
			}
			pm.Mirrors = append(pm.Mirrors, u)
		}
		out = append(out, pm)
	}
	return out, nil
}

func parseMirror(m string) (*url.URL, error) {
	raw := m
	if !strings.Contains(m, "://") {
		raw = "http://" + m
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("mirror %q is not host/path or an http(s):// URL", m)
	}
	u.Host = strings.ToLower(u.Host)
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

func parseLocation(item string) (route.Location, error) {
	item = strings.TrimPrefix(strings.TrimPrefix(item, "http://"), "https://")
	host, path, _ := strings.Cut(item, "/")
	host = strings.ToLower(host)
	check := strings.TrimPrefix(host, "*.")
	if h, _, err := net.SplitHostPort(check); err == nil {
		check = h
	}
	if host == "" || (net.ParseIP(strings.Trim(check, "[]")) == nil && !validHostname(check)) {
		return route.Location{}, fmt.Errorf("%q is not a host or host/path (e.g. deb.debian.org or ppa.launchpadcontent.net/owner)", item)
	}
	loc := route.Location{Host: host}
	if path = strings.Trim(path, "/"); path != "" {
		loc.Path = "/" + path
	}
	return loc, nil
}

// validHostname reports whether h is a DNS name. Its last label is not all
// digits (RFC 3696 2), so 1.2.3.4.5.6 is neither a name nor an address.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 || strings.Trim(h[strings.LastIndexByte(h, '.')+1:], "0123456789") == "" {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// ListenAddr is the address to listen on.
func (c *Config) ListenAddr() string {
	return net.JoinHostPort(c.DaemonAddr, strconv.Itoa(c.DaemonPort))
}
