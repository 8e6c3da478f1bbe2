package repotest

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testDebs are the packages of the fixture repository: app depends on
// libbig (5 MB), and unrelated must never be downloaded for app.
var testDebs = []Deb{
	{Name: "app", Version: "1.0-1", Depends: []string{"libbig (>= 2.0)"}, Size: 4096},
	{Name: "libbig", Version: "2.1-1", Size: 5 << 20},
	{Name: "unrelated", Version: "0.5", Size: 1024},
}

func TestAptGetDownloadsFromRepo(t *testing.T) {
	// A proxy in the environment must not reach the client: this one would
	// make every download fail.
	t.Setenv("http_proxy", "http://127.0.0.1:9/")
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:9/")

	start := time.Now()
	repo := BuildAptRepo(t, t.TempDir(), "testing", testDebs)
	t.Logf("BuildAptRepo took %v", time.Since(start))

	up := NewUpstream(t, repo.Root)
	client := NewAptClient(t, repo.SourcesLine(up.URL()+"/"), "")
	client.Update(t)
	client.DownloadOnly(t, "app")

	got := client.Archives(t)
	var names []string
	for name := range got {
		names = append(names, name)
	}
	slices.Sort(names)
	want := []string{"app_1.0-1_amd64.deb", "libbig_2.1-1_amd64.deb"}
	if !slices.Equal(names, want) {
		t.Fatalf("downloaded %q, want %q", names, want)
	}
	for _, pkg := range []string{"app", "libbig"} {
		upstream := readFile(t, filepath.Join(repo.Root, repo.Debs[pkg]))
		downloaded := readFile(t, got[filepath.Base(repo.Debs[pkg])])
		if !bytes.Equal(downloaded, upstream) {
			t.Errorf("downloaded %s: %d bytes differing from the repository's %d", pkg, len(downloaded), len(upstream))
		}
	}
	if n := len(readFile(t, filepath.Join(repo.Root, repo.Debs["libbig"]))); n < 5<<20 {
		t.Errorf("libbig .deb is %d bytes, want at least %d (payload must not compress)", n, 5<<20)
	}

	if n := up.Count("/dists/testing/InRelease"); n != 1 {
		t.Errorf("InRelease fetched %d times, want 1\nrequests: %q", n, up.Requests())
	}
	if n := up.CountContains("/main/binary-amd64/by-hash/SHA256/"); n != 1 {
		t.Errorf("by-hash Packages fetched %d times, want 1\nrequests: %q", n, up.Requests())
	}
	if n := up.CountContains("/main/binary-amd64/Packages"); n != 0 {
		t.Errorf("Packages fetched %d times by name, want 0 (by-hash only)\nrequests: %q", n, up.Requests())
	}
	if n := up.CountSuffix(".deb"); n != 2 {
		t.Errorf("upstream served %d .deb requests, want 2\nrequests: %q", n, up.Requests())
	}
	t.Logf("requests: %q", up.Requests())
}

func TestAptGetRejectsForeignKey(t *testing.T) {
	repo := BuildAptRepo(t, t.TempDir(), "stable", testDebs[2:])
	other := BuildAptRepo(t, t.TempDir(), "stable", testDebs[2:])
	up := NewUpstream(t, repo.Root)

	line := strings.Replace(repo.SourcesLine(up.URL()+"/"), repo.Keyring, other.Keyring, 1)
	client := NewAptClient(t, line, "")
	out, err := client.Run(t.Context(), "-q", "-y", "update")
	if err == nil {
		t.Fatalf("apt-get update trusted a repository signed by another key; output:\n%s", out)
	}
	if !strings.Contains(out, "NO_PUBKEY") && !strings.Contains(out, "not signed") {
		t.Errorf("apt-get update failed without naming the signature problem:\n%s", out)
	}
}

func TestBuildAptRepoRelease(t *testing.T) {
	repo := BuildAptRepo(t, t.TempDir(), "bookworm", testDebs[2:])
	release := string(readFile(t, filepath.Join(repo.Root, "dists", "bookworm", "Release")))
	for _, want := range []string{
		"Suite: bookworm\n", "Codename: bookworm\n", "Architectures: amd64\n",
		"Components: main\n", "Acquire-By-Hash: yes\n", "Date: ", "MD5Sum:\n", "SHA256:\n",
		" main/binary-amd64/Packages\n", " main/binary-amd64/Packages.gz\n", " main/binary-amd64/Packages.xz\n",
	} {
		if !strings.Contains(release, want) {
			t.Errorf("Release lacks %q:\n%s", want, release)
		}
	}
	for _, unwanted := range []string{"SHA512:", "SHA1:", "by-hash"} {
		if strings.Contains(release, unwanted) {
			t.Errorf("Release contains %q:\n%s", unwanted, release)
		}
	}
	inRelease := string(readFile(t, filepath.Join(repo.Root, "dists", "bookworm", "InRelease")))
	if !strings.HasPrefix(inRelease, "-----BEGIN PGP SIGNED MESSAGE-----") {
		t.Errorf("InRelease is not clearsigned:\n%s", inRelease)
	}

	// The same Deb builds to the same bytes.
	again := BuildAptRepo(t, t.TempDir(), "bookworm", testDebs[2:])
	rel := repo.Debs["unrelated"]
	if !bytes.Equal(readFile(t, filepath.Join(repo.Root, rel)), readFile(t, filepath.Join(again.Root, rel))) {
		t.Errorf("%s differs between two builds", rel)
	}
}

func TestUpstream(t *testing.T) {
	root := t.TempDir()
	content := bytes.Repeat([]byte("0123456789"), 1000)
	writeFile(t, filepath.Join(root, "file.deb"), content, 0o644)
	up := NewUpstream(t, root)

	get := func(t *testing.T, header http.Header) (*http.Response, []byte, error) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, up.URL()+"/file.deb", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp, body, err
	}

	t.Run("full", func(t *testing.T) {
		resp, body, err := get(t, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, content) {
			t.Errorf("got %d with %d bytes, want 200 with %d", resp.StatusCode, len(body), len(content))
		}
		if resp.Header.Get("Last-Modified") == "" {
			t.Errorf("no Last-Modified header")
		}
	})
	t.Run("range", func(t *testing.T) {
		resp, body, err := get(t, http.Header{"Range": {"bytes=10-19"}})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusPartialContent || string(body) != "0123456789" {
			t.Errorf("got %d %q, want 206 %q", resp.StatusCode, body, "0123456789")
		}
	})
	t.Run("if-modified-since", func(t *testing.T) {
		future := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
		resp, _, err := get(t, http.Header{"If-Modified-Since": {future}})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusNotModified {
			t.Errorf("got %d, want 304", resp.StatusCode)
		}
	})
	t.Run("abort-mid-body", func(t *testing.T) {
		up.SetHandler(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			w.Header().Set("Content-Length", "10000")
			w.Write(content[:100])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		})
		defer up.SetHandler(nil)
		_, _, err := get(t, nil)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("got error %v, want %v", err, io.ErrUnexpectedEOF)
		}
	})
	t.Run("counts", func(t *testing.T) {
		want := []string{"GET /file.deb", "GET /file.deb", "GET /file.deb", "GET /file.deb"}
		if got := up.Requests(); !slices.Equal(got, want) {
			t.Errorf("Requests() = %q, want %q", got, want)
		}
		if got := up.Count("/file.deb"); got != 4 {
			t.Errorf("Count = %d, want 4", got)
		}
		if got := up.CountSuffix(".deb"); got != 4 {
			t.Errorf("CountSuffix = %d, want 4", got)
		}
		up.Reset()
		if got := up.Count("/file.deb"); got != 0 {
			t.Errorf("Count after Reset = %d, want 0", got)
		}
	})
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
