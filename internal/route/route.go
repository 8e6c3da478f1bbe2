// Package route maps client requests, in every form pkg-cacher accepts, to
// cache keys and upstream URLs, and says which upstreams may be fetched
// from: the path_map entries and allowed_locations of the configuration.
package route

import (
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"vzpkg2/internal/cachekey"
)

// Table is what routes requests: path_map entries and allowed upstreams.
type Table struct {
	PathMap          []PathMap  // named upstream mirror lists
	AllowedLocations []Location // upstreams clients may reach by host (forms 1, 2, 4)
	AllowAll         bool       // allowed_locations = * : an open proxy on purpose
}

// PathMap maps the first path segment Name to mirrors tried in order.
type PathMap struct {
	Name    string
	Mirrors []*url.URL
}

// Location is an allowed upstream: a host (optionally "*.domain") and a path prefix.
type Location struct {
	Host string // lower case; "*.example.org" matches subdomains
	Path string // "" or a prefix starting with "/"
}

// Target is what a client request resolves to.
type Target struct {
	Key   string   // store key (package cachekey)
	URLs  []string // upstream URLs in the order to try
	Path  string   // the cleaned upstream path, for classification
	Query string   // the raw query string, for classification
	Show  string   // the URL to show in logs
}

// Refusal is a request refused, with the status and one-line reason the
// client sees.
type Refusal struct {
	Code   int
	Reason string
}

func (e *Refusal) Error() string { return e.Reason }

// Refuse returns a Refusal.
func Refuse(code int, reason string) *Refusal { return &Refusal{Code: code, Reason: reason} }

// Resolve maps a request in any of the client forms to a target:
//
//  1. proxy form, absolute URI:    GET http://deb.debian.org/debian/dists/...
//  2. URL prefix:                  GET /deb.debian.org/debian/dists/...
//  3. path_map name:               GET /debian/dists/...
//  4. HTTPS upstream (acng style): GET /HTTPS///host/path (also http://HTTPS///host/path)
func (tb *Table) Resolve(u *url.URL) (Target, *Refusal) {
	scheme := "http"
	var host, rawPath, query string
	if u.IsAbs() || u.Host != "" {
		if s := strings.ToLower(u.Scheme); s != "http" && s != "https" {
			return Target{}, Refuse(http.StatusBadRequest, "only http:// and https:// URLs can be cached")
		}
		scheme = strings.ToLower(u.Scheme)
		host, rawPath, query = u.Host, u.EscapedPath(), u.RawQuery
		if strings.EqualFold(host, "HTTPS") && isASCII(host) {
			// http://HTTPS///host/path: the acng form through a proxy setting.
			host, rawPath = "", "/HTTPS//"+rawPath
		}
	} else {
		rawPath, query = u.EscapedPath(), u.RawQuery
	}
	// A '#' the server took into the query would start a fragment in the
	// upstream URL: the key would name another file than the one fetched.
	query = strings.ReplaceAll(query, "#", "%23")
	segs, trailing, cerr := cleanPath(rawPath)
	if cerr != nil {
		return Target{}, cerr
	}
	if host == "" {
		if len(segs) > 0 && segs[0] == "HTTPS" && strings.HasPrefix(rawPath, "/HTTPS///") {
			scheme, segs = "https", segs[1:]
		}
		if len(segs) == 0 {
			return Target{}, Refuse(http.StatusNotFound, "no repository path given; see / for usage")
		}
		if pm := tb.Map(segs[0]); pm != nil && scheme == "http" {
			return mapTarget(pm, joinPath(segs[1:], trailing), query), nil
		}
		host, segs = segs[0], segs[1:]
		if !looksLikeHost(host) {
			return Target{}, Refuse(http.StatusNotFound, "\""+host+"\" is neither a path_map name nor a host name; see / for usage")
		}
	}
	host = cachekey.CanonicalHost(scheme, host)
	p := joinPath(segs, trailing)
	if pm, rest, ok := tb.mirrorOf(scheme, host, p); ok {
		return mapTarget(pm, rest, query), nil
	}
	if !tb.Allowed(host, p) {
		return Target{}, Refuse(http.StatusForbidden, "upstream "+host+" is not in allowed_locations or path_map of this pkg-cacher")
	}
	up := scheme + "://" + host + cachekey.EscapePath(p)
	if query != "" {
		up += "?" + query
	}
	return Target{Key: cachekey.ForURL(scheme, host, p, query), URLs: []string{up}, Path: p, Query: query, Show: up}, nil
}

func mapTarget(pm *PathMap, p, query string) Target {
	t := Target{Key: cachekey.ForMap(pm.Name, p, query), Path: p, Query: query}
	for _, m := range pm.Mirrors {
		u := m.Scheme + "://" + m.Host + cachekey.EscapePath(m.Path+p)
		if query != "" {
			u += "?" + query
		}
		t.URLs = append(t.URLs, u)
	}
	t.Show = "/" + pm.Name + cachekey.EscapePath(p) // escaped: one access-log field
	return t
}

// mirrorOf finds the path_map entry one of whose mirrors holds host/p, so a
// proxy-form request for a mapped mirror shares its cache and failover.
func (tb *Table) mirrorOf(scheme, host, p string) (*PathMap, string, bool) {
	for i := range tb.PathMap {
		pm := &tb.PathMap[i]
		for _, m := range pm.Mirrors {
			if m.Scheme != scheme || cachekey.CanonicalHost(m.Scheme, m.Host) != host {
				continue
			}
			if rest, ok := strings.CutPrefix(p, m.Path); ok && (rest == "" || rest[0] == '/') {
				return pm, rest, true
			}
		}
	}
	return nil, "", false
}

// cleanPath splits an escaped URL path into decoded segments, refusing
// dot segments (also percent-encoded ones), NUL, encoded slashes and bad
// escapes. Empty segments are dropped.
func cleanPath(raw string) (segs []string, trailing bool, _ *Refusal) {
	for _, s := range strings.Split(raw, "/") {
		if s == "" {
			continue
		}
		d, err := url.PathUnescape(s)
		if err != nil {
			return nil, false, Refuse(http.StatusBadRequest, "malformed percent-encoding in the path")
		}
		switch {
		case d == "." || d == "..":
			return nil, false, Refuse(http.StatusBadRequest, "dot segments are not allowed in paths")
		case strings.ContainsAny(d, "/\\\x00"):
			return nil, false, Refuse(http.StatusBadRequest, "encoded slashes, backslashes and NUL are not allowed in paths")
		}
		segs = append(segs, d)
	}
	return segs, strings.HasSuffix(raw, "/") && len(segs) > 0, nil
}

func joinPath(segs []string, trailing bool) string {
	p := "/" + strings.Join(segs, "/")
	if trailing && p != "/" {
		p += "/"
	}
	return p
}

// hostRE is the syntax of a host segment: a DNS name, an IPv4 address or a
// bracketed IPv6 address, with an optional port.
var hostRE = regexp.MustCompile(`^(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$`)

// looksLikeHost reports whether s is a host name with a dot, an IP address,
// or either with a port. Nothing else passes: "deb.debian.org:80@evil.example"
// or "evil.example%23.debian.org" would name another host in the upstream URL
// than the one allowed_locations was checked against.
func looksLikeHost(s string) bool {
	if !hostRE.MatchString(s) {
		return false
	}
	h := s
	if hh, _, err := net.SplitHostPort(s); err == nil {
		h = hh
	}
	return strings.Contains(h, ".") || net.ParseIP(strings.Trim(h, "[]")) != nil || h == "localhost"
}

// Allowed reports whether clients may fetch from host (lower case, with an
// optional :port) at path through a host-named form.
func (tb *Table) Allowed(host, path string) bool {
	if tb.AllowAll {
		return true
	}
	bare := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		bare = h
	}
	for _, l := range tb.AllowedLocations {
		if !l.matchHost(host, bare) {
			continue
		}
		if l.Path == "" || path == l.Path || strings.HasPrefix(path, l.Path+"/") {
			return true
		}
	}
	return false
}

// AllowedURL reports whether pkg-cacher may fetch u when an upstream
// redirects there: an http(s) URL without user info or dot segments, whose
// host and path are in allowed_locations or under a path_map mirror.
func (tb *Table) AllowedURL(u *url.URL) bool {
	if (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Host == "" || !cleanURLPath(u.EscapedPath()) {
		return false
	}
	host := cachekey.CanonicalHost(u.Scheme, u.Host)
	if tb.Allowed(host, u.Path) {
		return true
	}
	for _, pm := range tb.PathMap {
		for _, m := range pm.Mirrors {
			if cachekey.CanonicalHost(m.Scheme, m.Host) == host && (u.Path == m.Path || strings.HasPrefix(u.Path, m.Path+"/")) {
				return true
			}
		}
	}
	return false
}

// cleanURLPath reports whether an escaped URL path has no dot segments (also
// percent-encoded ones), encoded slashes or NUL, which would make the path
// checked another than the one the upstream serves.
func cleanURLPath(raw string) bool {
	_, _, refused := cleanPath(raw)
	return refused == nil
}

func (l Location) matchHost(host, bare string) bool {
	if suffix, ok := strings.CutPrefix(l.Host, "*."); ok {
		return strings.HasSuffix(bare, "."+suffix)
	}
	// A location with a port matches only that port; without one, any port.
	return l.Host == host || l.Host == bare
}

// Map returns the path_map entry called name, or nil.
func (tb *Table) Map(name string) *PathMap {
	for i := range tb.PathMap {
		if tb.PathMap[i].Name == name {
			return &tb.PathMap[i]
		}
	}
	return nil
}

// isASCII reports whether s has only ASCII bytes: strings.EqualFold folds
// Unicode (U+017F is an s).
func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
