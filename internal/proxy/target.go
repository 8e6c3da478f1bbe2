package proxy

import (
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"vzpkg2/internal/cacheconf"
	"vzpkg2/internal/cachekey"
)

// target is what a client request resolves to.
type target struct {
	key   string   // store key (package cachekey)
	urls  []string // upstream URLs in the order to try
	path  string   // the cleaned upstream path, for classification
	query string   // the raw query string, for classification
	show  string   // the URL to show in logs
}

// clientError is a refusal with the status and one-line reason the client sees.
type clientError struct {
	code   int
	reason string
}

func (e *clientError) Error() string { return e.reason }

func refuse(code int, reason string) *clientError { return &clientError{code: code, reason: reason} }

// resolve maps a request in any of the client forms to a target:
//
//  1. proxy form, absolute URI:    GET http://deb.debian.org/debian/dists/...
//  2. URL prefix:                  GET /deb.debian.org/debian/dists/...
//  3. path_map name:               GET /debian/dists/...
//  4. HTTPS upstream (acng style): GET /HTTPS///host/path (also http://HTTPS///host/path)
func resolve(cfg *cacheconf.Config, u *url.URL) (target, *clientError) {
	scheme := "http"
	var host, rawPath, query string
	if u.IsAbs() || u.Host != "" {
		if s := strings.ToLower(u.Scheme); s != "http" && s != "https" {
			return target{}, refuse(http.StatusBadRequest, "only http:// and https:// URLs can be cached")
		}
		scheme = strings.ToLower(u.Scheme)
		host, rawPath, query = u.Host, u.EscapedPath(), u.RawQuery
		if equalFoldASCII([]byte(host), "HTTPS") {
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
		return target{}, cerr
	}
	if host == "" {
		if len(segs) > 0 && segs[0] == "HTTPS" && strings.HasPrefix(rawPath, "/HTTPS///") {
			scheme, segs = "https", segs[1:]
		}
		if len(segs) == 0 {
			return target{}, refuse(http.StatusNotFound, "no repository path given; see / for usage")
		}
		if pm := cfg.Map(segs[0]); pm != nil && scheme == "http" {
			return mapTarget(pm, joinPath(segs[1:], trailing), query), nil
		}
		host, segs = segs[0], segs[1:]
		if !looksLikeHost(host) {
			return target{}, refuse(http.StatusNotFound, "\""+host+"\" is neither a path_map name nor a host name; see / for usage")
		}
	}
	host = cachekey.CanonicalHost(scheme, host)
	p := joinPath(segs, trailing)
	if pm, rest, ok := mirrorOf(cfg, scheme, host, p); ok {
		return mapTarget(pm, rest, query), nil
	}
	if !cfg.Allowed(host, p) {
		return target{}, refuse(http.StatusForbidden, "upstream "+host+" is not in allowed_locations or path_map of this pkg-cacher")
	}
	up := scheme + "://" + host + cachekey.EscapePath(p)
	if query != "" {
		up += "?" + query
	}
	return target{key: cachekey.ForURL(scheme, host, p, query), urls: []string{up}, path: p, query: query, show: up}, nil
}

func mapTarget(pm *cacheconf.PathMap, p, query string) target {
	t := target{key: cachekey.ForMap(pm.Name, p, query), path: p, query: query}
	for _, m := range pm.Mirrors {
		u := m.Scheme + "://" + m.Host + cachekey.EscapePath(m.Path+p)
		if query != "" {
			u += "?" + query
		}
		t.urls = append(t.urls, u)
	}
	t.show = "/" + pm.Name + cachekey.EscapePath(p) // escaped: one access-log field
	return t
}

// mirrorOf finds the path_map entry one of whose mirrors holds host/p, so a
// proxy-form request for a mapped mirror shares its cache and failover.
func mirrorOf(cfg *cacheconf.Config, scheme, host, p string) (*cacheconf.PathMap, string, bool) {
	for i := range cfg.PathMap {
		pm := &cfg.PathMap[i]
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
func cleanPath(raw string) (segs []string, trailing bool, _ *clientError) {
	for _, s := range strings.Split(raw, "/") {
		if s == "" {
			continue
		}
		d, err := url.PathUnescape(s)
		if err != nil {
			return nil, false, refuse(http.StatusBadRequest, "malformed percent-encoding in the path")
		}
		switch {
		case d == "." || d == "..":
			return nil, false, refuse(http.StatusBadRequest, "dot segments are not allowed in paths")
		case strings.ContainsAny(d, "/\\\x00"):
			return nil, false, refuse(http.StatusBadRequest, "encoded slashes, backslashes and NUL are not allowed in paths")
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
