package cacheserver

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"vzpkg2/internal/cacheconf"
	"vzpkg2/internal/repotest"
)

// testRPMs: app needs libmid, which needs libbig; unused is never installed.
var testRPMs = []repotest.RPM{
	{Name: "app", Version: "1.0", Release: "1", Requires: []string{"libmid"}, Size: 8 << 10},
	{Name: "libmid", Version: "2.1", Release: "3.fc42", Requires: []string{"libbig >= 2.0"}, Size: 2 << 10},
	{Name: "libbig", Version: "2.0", Release: "1", Size: 3 << 20},
	{Name: "tool", Version: "0.3^git1", Release: "1", Size: 1 << 10},
	{Name: "unused", Version: "1", Release: "1", Size: 1 << 10},
}

var wantInstalled = []string{"app-1.0-1.noarch", "libbig-2.0-1.noarch", "libmid-2.1-3.fc42.noarch", "tool-0.3^git1-1.noarch"}

// TestDnfThroughEveryForm runs real dnf clients through pkg-cacher, each
// with a fresh install root and metadata cache: with proxy=, with the
// cacher's address in baseurl=, and reaching an https upstream (whose CA
// only ca_file trusts) through a path_map https:// mirror and the HTTPS///
// form. The packages get installed, and a second client causes no upstream
// package request.
func TestDnfThroughEveryForm(t *testing.T) {
	root := t.TempDir()
	repo := repotest.BuildRPMRepo(t, filepath.Join(root, "42"), testRPMs)
	up := repotest.NewUpstream(t, root)
	tlsUp := repotest.NewTLSUpstream(t, root)
	for _, form := range []struct {
		name     string
		upstream *repotest.Upstream
		settings []string
		mainConf func(c *cacher) string
		baseURL  func(c *cacher) string
	}{
		{"proxy", up, nil,
			func(c *cacher) string { return "proxy=http://" + c.addr },
			func(*cacher) string { return up.URL() + "/$releasever/" }},
		{"prefix", up, nil,
			func(*cacher) string { return "" },
			func(c *cacher) string { return c.url("/" + up.HostPort() + "/$releasever/") }},
		{"path_map https", tlsUp, []string{"ca_file=" + tlsUp.CAFile(), "path_map=secure " + tlsUp.URL()},
			func(*cacher) string { return "" },
			func(c *cacher) string { return c.url("/secure/$releasever/") }},
		{"HTTPS///", tlsUp, []string{"ca_file=" + tlsUp.CAFile()},
			func(*cacher) string { return "" },
			func(c *cacher) string { return c.url("/HTTPS///" + tlsUp.HostPort() + "/$releasever/") }},
	} {
		t.Run(form.name, func(t *testing.T) {
			c := startCacher(t, form.upstream.HostPort(), "", form.settings...)
			form.upstream.Reset()
			for i := range 2 {
				dnf := repotest.NewDnfClient(t, "42", form.mainConf(c), repo.Section("test", form.baseURL(c)))
				dnf.Install(t, "app", "tool")
				if got := dnf.Installed(t); !slices.Equal(got, wantInstalled) {
					t.Errorf("client %d installed %q, want %q", i+1, got, wantInstalled)
				}
				data, err := os.ReadFile(filepath.Join(dnf.Root(), "usr", "share", "libbig", "data"))
				if err != nil || len(data) != 3<<20 {
					t.Errorf("client %d: libbig's file in the root has %d bytes (%v), want %d", i+1, len(data), err, 3<<20)
				}
				if n := form.upstream.CountSuffix(".rpm"); n != 4 {
					t.Errorf("after client %d the upstream served %d .rpm requests, want 4 (one per package, the second client none): %q",
						i+1, n, form.upstream.Requests())
				}
			}
			log := strings.Join(c.accessLog(t), "\n")
			for _, want := range []string{"MISS 200", "HIT 200", "/repodata/repomd.xml"} {
				if !strings.Contains(log, want) {
					t.Errorf("access log has no %q record:\n%s", want, log)
				}
			}
		})
	}
}

// An https upstream whose certificate the system roots do not trust is
// refused without ca_file, and a ca_file that is not a certificate stops
// pkg-cacher at start.
func TestHTTPSUpstreamVerified(t *testing.T) {
	root := t.TempDir()
	writeRandom(t, root, "/Packages/a-1-1.noarch.rpm", 1000)
	tlsUp := repotest.NewTLSUpstream(t, root)
	c := startCacher(t, tlsUp.HostPort(), "")
	resp, body := get(t, c.url("/HTTPS///"+tlsUp.HostPort()+"/Packages/a-1-1.noarch.rpm"))
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "certificate") {
		t.Errorf("untrusted https upstream: got %d %q, want 502 naming the certificate", resp.StatusCode, body)
	}
	if n := countFiles(t, filepath.Join(c.dir, "blobs")); n != 0 {
		t.Errorf("store holds %d files after a refused upstream, want 0", n)
	}

	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{notPEM, filepath.Join(t.TempDir(), "missing.pem")} {
		cfg, err := cacheconf.Load("", []string{"cache_dir=" + t.TempDir(), "logdir=", "ca_file=" + file})
		if err != nil {
			t.Fatal(err)
		}
		if srv, err := New(cfg, slog.New(slog.DiscardHandler)); err == nil {
			srv.close()
			t.Errorf("NewServer with ca_file=%s: no error", file)
		} else if !strings.Contains(err.Error(), "ca_file") || !strings.Contains(err.Error(), file) {
			t.Errorf("NewServer with ca_file=%s: error %q does not name ca_file and the file", file, err)
		}
	}
}

// The same package file name under two release paths, with different
// content, is two files in the cache.
func TestSameFileNameInTwoReleases(t *testing.T) {
	root := t.TempDir()
	const name = "/Packages/a/app-1.0-1.noarch.rpm"
	want41 := writeRandom(t, root, "/41"+name, 10_000)
	want42 := writeRandom(t, root, "/42"+name, 12_000)
	up := repotest.NewUpstream(t, root)
	c := startCacher(t, up.HostPort(), "")
	// The URL-prefix form names the host that path_map "local" maps, so
	// both forms share one cached copy of each file.
	for i, tc := range []struct {
		url, wantCache string
		want           []byte
	}{
		{c.url("/" + up.HostPort() + "/41" + name), "MISS", want41},
		{c.url("/" + up.HostPort() + "/42" + name), "MISS", want42},
		{c.url("/local/41" + name), "HIT", want41},
		{c.url("/local/42" + name), "HIT", want42},
		{c.url("/" + up.HostPort() + "/41" + name), "HIT", want41},
	} {
		resp, body := get(t, tc.url)
		if !bytes.Equal(body, tc.want) {
			t.Errorf("request %d: GET %s: got %d bytes differing from that release's %d-byte file", i+1, tc.url, len(body), len(tc.want))
		}
		if got := resp.Header.Get("X-Cache"); got != tc.wantCache {
			t.Errorf("request %d: GET %s: got X-Cache %s, want %s", i+1, tc.url, got, tc.wantCache)
		}
	}
	if n := up.CountSuffix(".rpm"); n != 2 {
		t.Errorf("upstream got %d .rpm requests, want 2 (each release's file once)", n)
	}
}

// Metalink answers are keyed with their query string and cached only briefly.
func TestMetalinkKeyedByQuery(t *testing.T) {
	up := repotest.NewUpstream(t, t.TempDir())
	up.SetHandler(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		w.Header().Set("Content-Type", "application/metalink+xml")
		fmt.Fprintf(w, "<metalink>%s</metalink>\n", r.URL.RawQuery)
	})
	c := startCacher(t, up.HostPort(), "")
	for round, wantCache := range []string{"MISS", "HIT"} {
		for _, q := range []string{"repo=fedora-41&arch=x86_64", "repo=fedora-42&arch=x86_64", "repo=fedora-42&arch=aarch64"} {
			resp, body := get(t, "http://"+c.addr+"/"+up.HostPort()+"/metalink?"+q)
			if want := "<metalink>" + q + "</metalink>\n"; string(body) != want {
				t.Errorf("round %d: metalink?%s: got %q, want %q", round+1, q, body, want)
			}
			if got := resp.Header.Get("X-Cache"); got != wantCache {
				t.Errorf("round %d: metalink?%s: got X-Cache %s, want %s", round+1, q, got, wantCache)
			}
		}
	}
	if n := up.Count("/metalink"); n != 3 {
		t.Errorf("upstream got %d metalink requests, want 3 (one per query)", n)
	}
}
