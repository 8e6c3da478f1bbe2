package repotest

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"
)

// testRPMs: app needs libmid, which needs libbig; unrelated is never
// installed for app.
var testRPMs = []RPM{
	{Name: "app", Version: "1.0", Release: "1", Requires: []string{"libmid"}, Size: 4096},
	{Name: "libmid", Version: "2.1", Release: "3", Requires: []string{"libbig >= 2.0"}, Size: 2048},
	{Name: "libbig", Version: "2.0", Release: "1", Size: 1 << 20},
	{Name: "unrelated", Version: "0.5", Release: "1", Size: 1024},
}

func TestDnfInstallsFromRPMRepo(t *testing.T) {
	t.Setenv("http_proxy", "http://127.0.0.1:9/") // must not reach dnf
	start := time.Now()
	repo := BuildRPMRepo(t, filepath.Join(t.TempDir(), "42"), testRPMs)
	t.Logf("BuildRPMRepo took %v", time.Since(start))

	names, err := filepath.Glob(filepath.Join(repo.Root, "repodata", "*"))
	if err != nil {
		t.Fatal(err)
	}
	prefixed := regexp.MustCompile(`/[0-9a-f]{64}-primary\.xml\.gz$`)
	if !slices.ContainsFunc(names, prefixed.MatchString) {
		t.Errorf("repodata has no checksum-prefixed primary.xml.gz: %q", names)
	}

	up := NewUpstream(t, filepath.Dir(repo.Root))
	client := NewDnfClient(t, "42", "", repo.Section("test", up.URL()+"/$releasever/"))
	start = time.Now()
	client.Install(t, "app")
	t.Logf("dnf install took %v", time.Since(start))

	want := []string{"app-1.0-1.noarch", "libbig-2.0-1.noarch", "libmid-2.1-3.noarch"}
	if got := client.Installed(t); !slices.Equal(got, want) {
		t.Errorf("installed %q, want %q", got, want)
	}
	data, err := os.ReadFile(filepath.Join(client.Root(), "usr", "share", "libbig", "data"))
	if err != nil || len(data) != 1<<20 {
		t.Errorf("libbig's payload in the root: %d bytes (%v), want %d", len(data), err, 1<<20)
	}
	if n := up.Count("/42/repodata/repomd.xml"); n != 1 {
		t.Errorf("repomd.xml fetched %d times, want 1\nrequests: %q", n, up.Requests())
	}
	if n := up.CountSuffix(".rpm"); n != 3 {
		t.Errorf("upstream served %d .rpm requests, want 3\nrequests: %q", n, up.Requests())
	}
}

func TestTLSUpstream(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "f"), []byte("hello"), 0o644)
	up := NewTLSUpstream(t, root)

	if _, err := http.Get(up.URL() + "/f"); err == nil {
		t.Error("the system roots trusted the TLS upstream's self-signed certificate")
	}
	pem, err := os.ReadFile(up.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", up.CAFile())
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(up.URL() + "/f")
	if err != nil {
		t.Fatalf("with CAFile trusted: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || up.Count("/f") != 1 {
		t.Errorf("got %d, %d requests counted; want 200 and 1 (the refused handshake sent none)", resp.StatusCode, up.Count("/f"))
	}
}
