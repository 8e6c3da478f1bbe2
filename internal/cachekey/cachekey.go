// Package cachekey names cached files: one key per upstream file, so that
// two different files never share one.
//
//	host/path[?query]            fetched over http
//	https://host/path[?query]    fetched over https
//	name:/path[?query]           reached through the path_map entry name
//
// The path is percent-encoded as in a URL (a '?' or '%' in a file name is
// %3F or %25), so the first '?' of a key always starts the query, and the
// scheme is part of the key, so a file fetched over http is never served to
// a client that asked for the https upstream. http keys of ordinary file
// names are the decoded paths, as pkg-cacher 0.1 keyed them.
package cachekey

import (
	"net"
	"net/url"
	"strings"
)

// ForURL is the key of the file at scheme://host/path?query; path is decoded
// and starts with '/', host is canonical (lower case, no default port).
func ForURL(scheme, host, path, query string) string {
	k := host + EscapePath(path)
	if scheme == "https" {
		k = "https://" + k
	}
	return withQuery(k, query)
}

// ForMap is the key of the file at path (decoded, starting with '/') of the
// path_map entry name.
func ForMap(name, path, query string) string {
	return withQuery(name+":"+EscapePath(path), query)
}

func withQuery(k, query string) string {
	if query != "" {
		return k + "?" + query
	}
	return k
}

// EscapePath percent-encodes a decoded path as in a URL.
func EscapePath(p string) string {
	return (&url.URL{Path: p}).EscapedPath()
}

// Dir is the key of the directory holding the file under key (its query
// dropped), without a trailing slash.
func Dir(key string) string {
	key, _, _ = strings.Cut(key, "?")
	return key[:max(strings.LastIndexByte(key, '/'), 0)]
}

// Join is the key of the file at the relative, decoded path rel below the
// directory key dir.
func Join(dir, rel string) string {
	return dir + "/" + strings.TrimPrefix(EscapePath("/"+rel), "/")
}

// CanonicalHost lower-cases host and drops the scheme's default port.
func CanonicalHost(scheme, host string) string {
	host = strings.ToLower(host)
	if h, port, err := net.SplitHostPort(host); err == nil {
		if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
			if strings.Contains(h, ":") {
				return "[" + h + "]"
			}
			return h
		}
	}
	return host
}
