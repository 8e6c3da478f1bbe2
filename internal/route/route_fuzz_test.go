package route_test

import (
	"bufio"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"vzpkg2/internal/cacheconf"
	"vzpkg2/internal/cachekey"
	"vzpkg2/internal/route"
)

// FuzzResolve feeds arbitrary request targets to resolve. Whatever it
// accepts must be safe to fetch and to key: the upstream URL names an
// allowed host or a path_map mirror and the very path the key holds, the key
// has no dot segments or NUL, the logged URL is one access-log field, and
// resolving the upstream URL again in proxy form gives the same key.
func FuzzResolve(f *testing.F) {
	cfg := cacheconf.Defaults()
	if err := cfg.Parse("fuzz.conf", strings.NewReader(
		"path_map = debian deb.debian.org/debian https://mirror.example.org/deb ; local 127.0.0.1:8080/repo\n"+
			"allowed_locations = deb.debian.org, *.example.net, repo.example.org/debian, 127.0.0.1:9000\n")); err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		// The request targets of TestResolve and the refusals of TestClientProtocol.
		"http://deb.debian.org/debian/dists/bookworm/InRelease",
		"http://deb.debian.org/debian-security/x",
		"/repo.example.org/debian/pool/a_1_amd64.deb",
		"/debian/pool/main/h/hello/hello_2.10-3_amd64.deb",
		"/local/dists/x/Release",
		"/HTTPS///repo.example.org/debian/dists/x/InRelease",
		"http://HTTPS///repo.example.org/debian/dists/x/InRelease",
		"/repo.example.org/debian/pool/main/g/g%2b%2b/g%2b%2b_1%7e2_amd64.deb",
		"//deb.debian.org//debian///dists/x",
		"http://deb.debian.org:80/debian-x/y",
		"/127.0.0.1:9000/metalink?repo=fedora-42&arch=x86_64",
		"/evil.example.org/x",
		"/deb.debian.org/debian/../../etc/passwd",
		"/deb.debian.org/debian/.%2E/x",
		"/deb.debian.org/debian%2f..%2fx",
		"/deb.debian.org/debian/a%00b",
		"/deb.debian.org/debian/a%zzb",
		"/nonsense/x",
		"ftp://deb.debian.org/x",
		// Host segments that smuggle another host past allowed_locations.
		"/deb.debian.org:80@evil.example.com/x",
		"/evil.example.com%23.example.net/x",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, requestTarget string) {
		tg, ok := resolveTarget(cfg, requestTarget)
		if !ok {
			return
		}
		if strings.ContainsRune(tg.Key, 0) {
			t.Fatalf("%q: key %q contains NUL", requestTarget, tg.Key)
		}
		keyPath, _, _ := strings.Cut(tg.Key, "?")
		_, p, _ := strings.Cut(keyPath, "/")
		for _, seg := range strings.Split(p, "/") {
			if seg == "." || seg == ".." || strings.Contains(seg, `\`) {
				t.Fatalf("%q: key %q has segment %q", requestTarget, tg.Key, seg)
			}
		}
		if !strings.HasSuffix(keyPath, cachekey.EscapePath(tg.Path)) {
			t.Fatalf("%q: key %q does not end with the path %q", requestTarget, tg.Key, tg.Path)
		}
		if i := strings.IndexFunc(tg.Show, func(r rune) bool { return r <= ' ' || r == 0x7f }); i >= 0 {
			t.Fatalf("%q: logged URL %q has %q: the access log record would not be one field", requestTarget, tg.Show, tg.Show[i])
		}
		if len(tg.URLs) == 0 {
			t.Fatalf("%q: no upstream URL for key %q", requestTarget, tg.Key)
		}
		for _, raw := range tg.URLs {
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatalf("%q: upstream URL %q does not parse: %v", requestTarget, raw, err)
			}
			if u.User != nil || u.Fragment != "" || !strings.HasSuffix(u.Path, tg.Path) {
				t.Fatalf("%q: upstream URL %q is not host %q with path %q", requestTarget, raw, u.Host, tg.Path)
			}
			if !cfg.Allowed(cachekey.CanonicalHost(u.Scheme, u.Host), u.Path) && !isMirror(cfg, u) {
				t.Fatalf("%q: upstream URL %q: host %q is neither in allowed_locations nor a path_map mirror", requestTarget, raw, u.Host)
			}
		}
		again, ok := resolveTarget(cfg, tg.URLs[0])
		if !ok || again.Key != tg.Key || !slices.Equal(again.URLs, tg.URLs) {
			t.Fatalf("%q resolves to key %q, urls %q; its upstream URL %q resolves to key %q, urls %q (accepted %v)",
				requestTarget, tg.Key, tg.URLs, tg.URLs[0], again.Key, again.URLs, ok)
		}
	})
}

// resolveTarget parses a GET request for requestTarget the way the server
// does and resolves it.
func resolveTarget(cfg *cacheconf.Config, requestTarget string) (route.Target, bool) {
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + requestTarget + " HTTP/1.1\r\nHost: cacher:3142\r\n\r\n")))
	if err != nil {
		return route.Target{}, false // the server answers 400 itself
	}
	if !r.URL.IsAbs() && r.URL.Host == "" && r.URL.Path == "/" {
		return route.Target{}, false // the usage page
	}
	t, cerr := cfg.Resolve(r.URL)
	return t, cerr == nil
}

// isMirror reports whether u is on one of cfg's path_map mirrors.
func isMirror(cfg *cacheconf.Config, u *url.URL) bool {
	for _, pm := range cfg.PathMap {
		for _, m := range pm.Mirrors {
			if m.Scheme == u.Scheme && m.Host == u.Host && (u.Path == m.Path || strings.HasPrefix(u.Path, m.Path+"/")) {
				return true
			}
		}
	}
	return false
}
