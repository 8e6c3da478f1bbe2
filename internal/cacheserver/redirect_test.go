package cacheserver

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"vzpkg2/internal/repotest"
)

// A mirror redirector answers 302 to a second server: pkg-cacher follows
// it, stores the file under the URL the client asked for, and serves the
// repeat request without contacting either server.
func TestRedirectFollowedAndStoredUnderClientURL(t *testing.T) {
	mirrorRoot := t.TempDir()
	mirror := repotest.NewUpstream(t, mirrorRoot)
	redirector := repotest.NewUpstream(t, t.TempDir())
	redirector.SetHandler(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		http.Redirect(w, r, mirror.URL()+r.URL.Path, http.StatusFound)
	})
	c := startCacher(t, redirector.HostPort(), "", "allowed_locations="+redirector.HostPort()+","+mirror.HostPort())
	for _, form := range []struct {
		name, path string
		url        func(path string) string
		proxied    bool
	}{
		{"prefix", "/41/Packages/a/app-1.0-1.noarch.rpm", func(p string) string { return c.url("/" + redirector.HostPort() + p) }, false},
		{"proxy", "/42/Packages/a/app-1.0-1.noarch.rpm", func(p string) string { return redirector.URL() + p }, true},
	} {
		t.Run(form.name, func(t *testing.T) {
			want := writeRandom(t, mirrorRoot, form.path, 200_000)
			redirector.Reset()
			mirror.Reset()
			for i, wantCache := range []string{"MISS", "HIT"} {
				var resp *http.Response
				var body []byte
				if form.proxied {
					resp, body = getProxied(t, c, form.url(form.path))
				} else {
					resp, body = get(t, form.url(form.path))
				}
				if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
					t.Errorf("request %d: got %d with %d bytes, want 200 with the mirror's %d", i+1, resp.StatusCode, len(body), len(want))
				}
				if got := resp.Header.Get("X-Cache"); got != wantCache {
					t.Errorf("request %d: got X-Cache %s, want %s", i+1, got, wantCache)
				}
				if r, m := redirector.Count(form.path), mirror.Count(form.path); r != 1 || m != 1 {
					t.Errorf("after request %d the redirector got %d requests, the mirror %d; want 1 each (the repeat contacts neither)", i+1, r, m)
				}
			}
		})
	}
}

// Redirects are followed for at most 5 hops and only to http or https.
func TestRedirectLimits(t *testing.T) {
	up := repotest.NewUpstream(t, t.TempDir())
	// /hops/N/file redirects to /hops/N-1/file; /hops/0/file is the file.
	up.SetHandler(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 3)
		if parts[0] == "ftp" {
			http.Redirect(w, r, "ftp://127.0.0.1/x.rpm", http.StatusFound)
			return
		}
		n, _ := strconv.Atoi(parts[1])
		if n > 0 {
			http.Redirect(w, r, fmt.Sprintf("/hops/%d/%s", n-1, parts[2]), http.StatusMovedPermanently)
			return
		}
		w.Write([]byte("package " + parts[2]))
	})
	c := startCacher(t, up.HostPort(), "")
	for _, tc := range []struct {
		path         string
		wantCode     int
		wantRequests int
	}{
		{"/hops/5/five.rpm", http.StatusOK, 6},
		{"/hops/6/six.rpm", http.StatusBadGateway, 6},
		{"/ftp/x.rpm", http.StatusBadGateway, 1},
	} {
		t.Run(tc.path, func(t *testing.T) {
			up.Reset()
			resp, body := get(t, c.url("/local"+tc.path))
			if resp.StatusCode != tc.wantCode {
				t.Errorf("got %d %q, want %d", resp.StatusCode, body, tc.wantCode)
			}
			if n := len(up.Requests()); n != tc.wantRequests {
				t.Errorf("upstream got %d requests, want %d: %q", n, tc.wantRequests, up.Requests())
			}
		})
	}
}

// An HTML page where a package was expected (a captive portal) is refused
// and the next mirror tried; nothing of it is stored.
func TestHTMLInsteadOfPackageRefused(t *testing.T) {
	const path = "/Packages/a/app-1.0-1.noarch.rpm"
	root := t.TempDir()
	want := writeRandom(t, root, path, 50_000)
	good := repotest.NewUpstream(t, root)
	portal := repotest.NewUpstream(t, t.TempDir())
	portal.SetHandler(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte("<html><body>Please log in to the hotel Wi-Fi</body></html>"))
	})

	t.Run("next mirror", func(t *testing.T) {
		c := startCacher(t, portal.HostPort(), "", "path_map=local "+portal.HostPort()+" "+good.HostPort())
		for i, wantCache := range []string{"MISS", "HIT"} {
			resp, body := get(t, c.url("/local"+path))
			if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) || resp.Header.Get("X-Cache") != wantCache {
				t.Errorf("request %d: got %d %s with %d bytes, want 200 %s with the good mirror's %d",
					i+1, resp.StatusCode, resp.Header.Get("X-Cache"), len(body), wantCache, len(want))
			}
		}
		if n := portal.Count(path); n != 1 {
			t.Errorf("portal got %d requests, want 1", n)
		}
	})
	t.Run("only mirror", func(t *testing.T) {
		c := startCacher(t, portal.HostPort(), "")
		resp, body := get(t, c.url("/local"+path))
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "HTML") {
			t.Errorf("got %d %q, want 502 naming the HTML answer", resp.StatusCode, body)
		}
		if n := countFiles(t, filepath.Join(c.dir, "blobs")); n != 0 {
			t.Errorf("store holds %d files after an HTML answer, want 0", n)
		}
	})
	t.Run("index may be HTML", func(t *testing.T) {
		// Only packages and checksum-named files are refused as HTML: an
		// unknown path (a directory listing, say) is passed on.
		c := startCacher(t, portal.HostPort(), "")
		resp, body := get(t, c.url("/local/42/"))
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "<html>") {
			t.Errorf("got %d %q, want 200 with the HTML page", resp.StatusCode, body)
		}
	})
}

// getProxied GETs url through pkg-cacher as an HTTP proxy.
func getProxied(t *testing.T, c *cacher, url string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{Proxy: func(*http.Request) (*neturl.URL, error) { return neturl.Parse(c.url("/")) }}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}
