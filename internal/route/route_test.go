package route_test

import (
	"bufio"
	"net/http"
	"strings"
	"testing"

	"vzpkg2/internal/cacheconf"
)

func TestResolve(t *testing.T) {
	cfg := cacheconf.Defaults()
	if err := cfg.Parse("t.conf", strings.NewReader(
		"path_map = debian deb.debian.org/debian https://mirror.example.org/deb ; local 127.0.0.1:8080/repo\n"+
			"allowed_locations = deb.debian.org, repo.example.org/debian, 127.0.0.1:9000\n")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, requestLine string
		wantKey           string
		wantURLs          []string
		wantCode          int
	}{
		{"proxy form", "GET http://deb.debian.org/debian/dists/bookworm/InRelease",
			"debian:/dists/bookworm/InRelease", []string{"http://deb.debian.org/debian/dists/bookworm/InRelease", "https://mirror.example.org/deb/dists/bookworm/InRelease"}, 0},
		{"proxy form unmapped path", "GET http://deb.debian.org/debian-security/x",
			"deb.debian.org/debian-security/x", []string{"http://deb.debian.org/debian-security/x"}, 0},
		{"prefix form", "GET /repo.example.org/debian/pool/a_1_amd64.deb",
			"repo.example.org/debian/pool/a_1_amd64.deb", []string{"http://repo.example.org/debian/pool/a_1_amd64.deb"}, 0},
		{"path_map form", "GET /debian/pool/main/h/hello/hello_2.10-3_amd64.deb",
			"debian:/pool/main/h/hello/hello_2.10-3_amd64.deb", []string{"http://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", "https://mirror.example.org/deb/pool/main/h/hello/hello_2.10-3_amd64.deb"}, 0},
		{"path_map with port", "GET /local/dists/x/Release",
			"local:/dists/x/Release", []string{"http://127.0.0.1:8080/repo/dists/x/Release"}, 0},
		{"https form", "GET /HTTPS///repo.example.org/debian/dists/x/InRelease",
			"https://repo.example.org/debian/dists/x/InRelease", []string{"https://repo.example.org/debian/dists/x/InRelease"}, 0},
		{"https form through proxy", "GET http://HTTPS///repo.example.org/debian/dists/x/InRelease",
			"https://repo.example.org/debian/dists/x/InRelease", []string{"https://repo.example.org/debian/dists/x/InRelease"}, 0},
		{"percent-encoded plus", "GET /repo.example.org/debian/pool/main/g/g%2b%2b/g%2b%2b_1%7e2_amd64.deb",
			"repo.example.org/debian/pool/main/g/g++/g++_1~2_amd64.deb", []string{"http://repo.example.org/debian/pool/main/g/g++/g++_1~2_amd64.deb"}, 0},
		{"double slashes", "GET //deb.debian.org//debian///dists/x",
			"debian:/dists/x", []string{"http://deb.debian.org/debian/dists/x", "https://mirror.example.org/deb/dists/x"}, 0},
		{"default port dropped", "GET http://deb.debian.org:80/debian-x/y",
			"deb.debian.org/debian-x/y", []string{"http://deb.debian.org/debian-x/y"}, 0},
		{"encoded question mark is part of the name", "GET /repo.example.org/debian/pool/q.deb%3Fv=1",
			"repo.example.org/debian/pool/q.deb%3Fv=1", []string{"http://repo.example.org/debian/pool/q.deb%3Fv=1"}, 0},
		{"real query is not", "GET /repo.example.org/debian/pool/q.deb?v=1",
			"repo.example.org/debian/pool/q.deb?v=1", []string{"http://repo.example.org/debian/pool/q.deb?v=1"}, 0},
		{"query kept", "GET /127.0.0.1:9000/metalink?repo=fedora-42&arch=x86_64",
			"127.0.0.1:9000/metalink?repo=fedora-42&arch=x86_64", []string{"http://127.0.0.1:9000/metalink?repo=fedora-42&arch=x86_64"}, 0},

		{"host not allowed", "GET /evil.example.org/x", "", nil, http.StatusForbidden},
		{"proxy host not allowed", "GET http://evil.example.org/x", "", nil, http.StatusForbidden},
		{"path outside allowed prefix", "GET /repo.example.org/other/x", "", nil, http.StatusForbidden},
		{"other port not allowed", "GET /127.0.0.1:9001/x", "", nil, http.StatusForbidden},
		{"dot dot", "GET /deb.debian.org/debian/../../etc/passwd", "", nil, http.StatusBadRequest},
		{"encoded dot dot", "GET /deb.debian.org/debian/%2e%2e/x", "", nil, http.StatusBadRequest},
		{"encoded dot dot mixed case", "GET /deb.debian.org/debian/.%2E/x", "", nil, http.StatusBadRequest},
		{"proxy form dot dot", "GET http://deb.debian.org/debian/../x", "", nil, http.StatusBadRequest},
		{"encoded slash", "GET /deb.debian.org/debian%2f..%2fx", "", nil, http.StatusBadRequest},
		{"nul", "GET /deb.debian.org/debian/a%00b", "", nil, http.StatusBadRequest},
		{"bad escape", "GET /deb.debian.org/debian/a%zzb", "", nil, http.StatusBadRequest},
		{"not a host", "GET /nonsense/x", "", nil, http.StatusNotFound},
		{"ftp scheme", "GET ftp://deb.debian.org/x", "", nil, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(tc.requestLine + " HTTP/1.1\r\nHost: cacher:3142\r\n\r\n")))
			if err != nil {
				if tc.wantCode == http.StatusBadRequest {
					return // Go's own parser refuses it: also a 400
				}
				t.Fatal(err)
			}
			got, cerr := cfg.Resolve(r.URL)
			if tc.wantCode != 0 {
				if cerr == nil || cerr.Code != tc.wantCode {
					t.Fatalf("got %+v, %v; want refusal %d", got, cerr, tc.wantCode)
				}
				return
			}
			if cerr != nil {
				t.Fatalf("got refusal %d %s", cerr.Code, cerr.Reason)
			}
			if got.Key != tc.wantKey {
				t.Errorf("got key %q, want %q", got.Key, tc.wantKey)
			}
			if strings.Join(got.URLs, " ") != strings.Join(tc.wantURLs, " ") {
				t.Errorf("got urls %q, want %q", got.URLs, tc.wantURLs)
			}
		})
	}
}
