package cacheserver

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"vzpkg2/internal/repotest"
)

// byteRange is an inclusive range of a file's bytes.
type byteRange struct{ first, last int }

func (r byteRange) contentRange(size int) string {
	return fmt.Sprintf("bytes %d-%d/%d", r.first, r.last, size)
}

// rangeClient bounds every request: a response waiting for bytes that never
// come fails the test instead of hanging it.
var rangeClient = &http.Client{Timeout: 10 * time.Second}

// fetch sends a GET with the header pairs and returns the response with
// its body read.
func fetch(url string, header ...string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := rangeClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// rangeGet is fetch failing the test on error.
func rangeGet(t *testing.T, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	resp, b, err := fetch(url, header...)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp, b
}

// checkRanges checks that resp answers want of file: 206 with the bytes of a
// single range, or a multipart/byteranges body whose parts are the ranges.
func checkRanges(t *testing.T, resp *http.Response, body, file []byte, want []byteRange) {
	t.Helper()
	if resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("got status %d, want 206", resp.StatusCode)
	}
	if len(want) == 1 {
		r := want[0]
		if got := resp.Header.Get("Content-Range"); got != r.contentRange(len(file)) {
			t.Errorf("got Content-Range %q, want %q", got, r.contentRange(len(file)))
		}
		if !bytes.Equal(body, file[r.first:r.last+1]) {
			t.Errorf("got %d bytes differing from bytes %d-%d of the file", len(body), r.first, r.last)
		}
		return
	}
	parts := readParts(t, resp.Header.Get("Content-Type"), bytes.NewReader(body), len(want))
	for i, p := range parts {
		r := want[i]
		if p.contentRange != r.contentRange(len(file)) {
			t.Errorf("part %d: got Content-Range %q, want %q", i+1, p.contentRange, r.contentRange(len(file)))
		}
		if !bytes.Equal(p.data, file[r.first:r.last+1]) {
			t.Errorf("part %d: got %d bytes differing from bytes %d-%d of the file", i+1, len(p.data), r.first, r.last)
		}
	}
}

type part struct {
	contentRange string
	data         []byte
}

// readParts reads n parts of a multipart/byteranges body from r.
func readParts(t *testing.T, contentType string, r io.Reader, n int) []part {
	t.Helper()
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/byteranges" {
		t.Fatalf("got Content-Type %q, want multipart/byteranges", contentType)
	}
	mr := multipart.NewReader(r, params["boundary"])
	var parts []part
	for range n {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("part %d: %v", len(parts)+1, err)
		}
		data, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("part %d: %v", len(parts)+1, err)
		}
		parts = append(parts, part{p.Header.Get("Content-Range"), data})
	}
	return parts
}

func rangeHeader(rs []byteRange, suffix string) string {
	var s []string
	for _, r := range rs {
		s = append(s, fmt.Sprintf("%d-%d", r.first, r.last))
	}
	return "bytes=" + strings.Join(s, ",") + suffix
}

// Range requests on a cached package: single, open-ended, suffix and
// multi-range, If-Range, and 416 when unsatisfiable.
func TestRangeOnCachedFile(t *testing.T) {
	root := t.TempDir()
	const path = "/Packages/l/libbig-2.0-1.noarch.rpm"
	const size = 300_000
	file := writeRandom(t, root, path, size)
	up := repotest.NewUpstream(t, root)
	c := startCacher(t, up.HostPort(), "")
	url := c.url("/local" + path)
	rangeGet(t, url) // fill
	full, _ := rangeGet(t, url)
	lastModified, etag := full.Header.Get("Last-Modified"), full.Header.Get("ETag")
	if etag == "" || lastModified == "" {
		t.Fatalf("cached file served without ETag (%q) or Last-Modified (%q)", etag, lastModified)
	}
	three := []byteRange{{0, 99}, {100_000, 100_999}, {size - 50, size - 1}}

	for _, tc := range []struct {
		name   string
		header []string
		want   []byteRange // nil: the whole file with 200
	}{
		{"single", []string{"Range", "bytes=1000-1999"}, []byteRange{{1000, 1999}}},
		{"open-ended", []string{"Range", "bytes=299000-"}, []byteRange{{299_000, size - 1}}},
		{"suffix", []string{"Range", "bytes=-500"}, []byteRange{{size - 500, size - 1}}},
		{"last byte past the end", []string{"Range", "bytes=299990-400000"}, []byteRange{{299_990, size - 1}}},
		{"three ranges", []string{"Range", rangeHeader(three, "")}, three},
		{"If-Range date matches", []string{"Range", "bytes=10-19", "If-Range", lastModified}, []byteRange{{10, 19}}},
		{"If-Range ETag matches", []string{"Range", "bytes=10-19", "If-Range", etag}, []byteRange{{10, 19}}},
		{"If-Range date differs", []string{"Range", "bytes=10-19", "If-Range", "Mon, 02 Jan 2006 15:04:05 GMT"}, nil},
		{"If-Range ETag differs", []string{"Range", "bytes=10-19", "If-Range", `"0123"`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := rangeGet(t, url, tc.header...)
			if got := resp.Header.Get("X-Cache"); got != "HIT" {
				t.Errorf("got X-Cache %s, want HIT", got)
			}
			if tc.want == nil {
				if resp.StatusCode != http.StatusOK || !bytes.Equal(body, file) {
					t.Errorf("got %d with %d bytes, want 200 with the whole file", resp.StatusCode, len(body))
				}
				return
			}
			checkRanges(t, resp, body, file, tc.want)
		})
	}
	t.Run("unsatisfiable", func(t *testing.T) {
		resp, _ := rangeGet(t, url, "Range", fmt.Sprintf("bytes=%d-", size))
		if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", size) {
			t.Errorf("got %d with Content-Range %q, want 416 with bytes */%d", resp.StatusCode, resp.Header.Get("Content-Range"), size)
		}
	})
	if n := up.Count(path); n != 1 {
		t.Errorf("upstream got %d requests, want 1", n)
	}
}

// Range requests on a file still downloading get the bytes that exist at
// once and wait for the rest: a multi-range request gets its parts in the
// first half while the upstream is stalled after sending that half.
func TestRangeWhileDownloading(t *testing.T) {
	root := t.TempDir()
	const path = "/Packages/l/libbig-2.0-1.noarch.rpm"
	const size = 1 << 20
	const half = size / 2
	file := writeRandom(t, root, path, size)
	up := repotest.NewUpstream(t, root)
	halfway, release := make(chan struct{}, 1), make(chan struct{})
	up.SetHandler(gated(path, halfway, release))
	c := startCacher(t, up.HostPort(), "")
	url := c.url("/local" + path)

	// The first client starts the fill; the upstream stops after half.
	first := make(chan []byte, 1)
	go func() {
		_, body, _ := fetch(url)
		first <- body
	}()
	select {
	case <-halfway:
	case <-time.After(30 * time.Second):
		t.Fatal("upstream never got the request")
	}
	var released bool
	defer func() {
		if !released {
			close(release)
		}
	}()

	// Answered from the first half while the upstream waits.
	var lastModified string
	t.Run("single range in the first half", func(t *testing.T) {
		resp, body := rangeGet(t, url, "Range", "bytes=1000-1999")
		lastModified = resp.Header.Get("Last-Modified")
		checkRanges(t, resp, body, file, []byteRange{{1000, 1999}})
	})
	t.Run("If-Range date matches", func(t *testing.T) {
		resp, body := rangeGet(t, url, "Range", "bytes=10-19", "If-Range", lastModified)
		checkRanges(t, resp, body, file, []byteRange{{10, 19}})
	})
	t.Run("unsatisfiable", func(t *testing.T) {
		resp, _ := rangeGet(t, url, "Range", fmt.Sprintf("bytes=%d-", size+10))
		if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", size) {
			t.Errorf("got %d with Content-Range %q, want 416 with bytes */%d", resp.StatusCode, resp.Header.Get("Content-Range"), size)
		}
	})

	// Three ranges, the last in the second half: the first two parts
	// arrive now, the third once the upstream goes on.
	three := []byteRange{{0, 99}, {200_000, 200_999}, {half + 1000, half + 1999}}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Range", rangeHeader(three, ""))
	multi, err := rangeClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer multi.Body.Close()
	// JOINED: served from the download the first client started.
	if multi.StatusCode != http.StatusPartialContent || multi.Header.Get("X-Cache") != "JOINED" {
		t.Fatalf("three ranges while downloading: got %d %s, want 206 JOINED", multi.StatusCode, multi.Header.Get("X-Cache"))
	}
	mt, params, err := mime.ParseMediaType(multi.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" {
		t.Fatalf("got Content-Type %q, want multipart/byteranges", multi.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(multi.Body, params["boundary"])
	readPart := func(i int) {
		t.Helper()
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("part %d: %v", i+1, err)
		}
		data, err := io.ReadAll(p)
		r := three[i]
		if err != nil || !bytes.Equal(data, file[r.first:r.last+1]) || p.Header.Get("Content-Range") != r.contentRange(size) {
			t.Errorf("part %d: got %d bytes (%v) with Content-Range %q, want bytes %d-%d",
				i+1, len(data), err, p.Header.Get("Content-Range"), r.first, r.last)
		}
	}
	readPart(0)
	readPart(1)

	// Ranges that need the second half, asked before the upstream goes on.
	suffix, openEnded := make(chan error, 1), make(chan error, 1)
	go func() {
		resp, body, err := fetch(url, "Range", "bytes=-100")
		suffix <- wantRange(resp, body, err, file, byteRange{size - 100, size - 1})
	}()
	go func() {
		resp, body, err := fetch(url, "Range", fmt.Sprintf("bytes=%d-", half-10))
		openEnded <- wantRange(resp, body, err, file, byteRange{half - 10, size - 1})
	}()

	close(release)
	released = true
	readPart(2)
	if _, err := mr.NextPart(); err != io.EOF {
		t.Errorf("after three parts: got %v, want the end of the multipart body", err)
	}
	for name, ch := range map[string]chan error{"suffix": suffix, "open-ended": openEnded} {
		if err := <-ch; err != nil {
			t.Errorf("%s range while downloading: %v", name, err)
		}
	}
	if body := <-first; !bytes.Equal(body, file) {
		t.Errorf("first client got %d bytes, want the whole %d-byte file", len(body), size)
	}
	if n := up.Count(path); n != 1 {
		t.Errorf("upstream got %d requests, want 1 (all clients share one fill)", n)
	}
}

// wantRange reports how a response differs from a 206 with range r of file.
func wantRange(resp *http.Response, body []byte, err error, file []byte, r byteRange) error {
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != r.contentRange(len(file)) ||
		!bytes.Equal(body, file[r.first:r.last+1]) {
		return fmt.Errorf("got %d %q with %d bytes, want 206 %q", resp.StatusCode, resp.Header.Get("Content-Range"), len(body), r.contentRange(len(file)))
	}
	return nil
}
