package cacheserver

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"vzpkg2/internal/repotest"
)

// chromium renders url headless and returns the DOM it ends with, writing
// a screenshot to png.
func chromium(t *testing.T, url, png string) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (scripts/setup.sh installs it)")
	}
	home := t.TempDir()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=" + home, "--window-size=1100,1400"}
	run := func(extra ...string) []byte {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append(append(args, extra...), url)...)
		cmd.Env = append(os.Environ(), "HOME="+home)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium %s: %v", strings.Join(extra, " "), err)
		}
		return out
	}
	run("--screenshot=" + png)
	return string(run("--dump-dom"))
}

// The status page, rendered by a real browser after known traffic, shows
// the hit ratio, the byte counts and the repository rows that traffic makes;
// the JSON has the same numbers.
func TestStatusPage(t *testing.T) {
	root := t.TempDir()
	writeRandom(t, root, "/pool/a.deb", 10_000)
	writeRandom(t, root, "/pool/b.deb", 20_000)
	up := repotest.NewUpstream(t, root)
	c := startCacher(t, up.HostPort(), "")
	for _, p := range []string{"/local/pool/a.deb", "/local/pool/a.deb", "/local/pool/b.deb"} {
		if resp, _ := get(t, c.url(p)); resp.StatusCode != 200 {
			t.Fatalf("%s: %d", p, resp.StatusCode)
		}
	}
	if resp, body := get(t, c.url("/healthz")); resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Errorf("/healthz: %d %q", resp.StatusCode, body)
	}

	png := filepath.Join(os.TempDir(), "pkg-cacher-status-page.png")
	dom := chromium(t, c.url("/pkg-cacher/report"), png)
	if fi, err := os.Stat(png); err != nil || fi.Size() < 1000 {
		t.Errorf("no screenshot at %s: %v", png, err)
	}
	t.Logf("screenshot: %s", png)
	cell := func(id string) string {
		m := regexp.MustCompile(`id="` + id + `">([^<]*)<`).FindStringSubmatch(dom)
		if m == nil {
			return ""
		}
		return m[1]
	}
	for id, want := range map[string]string{"hit-ratio": "33.3%", "requests": "3", "served": "40.0 KB", "upstream": "30.0 KB", "saved": "10.0 KB"} {
		if got := cell(id); got != want {
			t.Errorf("the page shows %s %q, want %q", id, got, want)
		}
	}
	if !regexp.MustCompile(`<td>local</td><td>3</td><td>1</td><td>40.0 KB</td><td>30.0 KB</td><td>30.0 KB</td>`).MatchString(dom) {
		t.Errorf("no repository row for local with 3 requests, 1 hit, 40 KB served, 30 KB from upstream and on disk:\n%s", dom)
	}
	if !strings.Contains(dom, "<svg") {
		t.Error("the page has no chart")
	}

	resp, err := http.Get(c.url("/pkg-cacher/report.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct {
		HitRatio float64 `json:"hit_ratio"`
		Total    struct {
			Requests, Hits, Served, Upstream int64
		} `json:"total"`
		Repos []struct {
			Name     string `json:"name"`
			Requests int64  `json:"requests"`
			Hits     int64  `json:"hits"`
			Disk     int64  `json:"disk_bytes"`
		} `json:"repositories"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	if s.Total.Requests != 3 || s.Total.Hits != 1 || len(s.Repos) != 1 || s.Repos[0].Name != "local" || s.Repos[0].Requests != 3 || s.Repos[0].Disk != 30_000 {
		t.Errorf("JSON: %+v; want the page's numbers", s)
	}
}

// The status page's history survives a restart.
func TestStatusHistorySurvivesRestart(t *testing.T) {
	root := t.TempDir()
	writeRandom(t, root, "/pool/a.deb", 10_000)
	up := repotest.NewUpstream(t, root)
	cfg := testConfig(t, up.HostPort(), "")
	base, stop := serve(t, cfg)
	get(t, base+"/local/pool/a.deb")
	get(t, base+"/local/pool/a.deb")
	stop()
	base, _ = serve(t, cfg)
	resp, err := http.Get(base + "/pkg-cacher/report.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct {
		Hours []struct {
			Requests int64 `json:"requests"`
			Hits     int64 `json:"hits"`
		} `json:"hours"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	var req, hits int64
	for _, h := range s.Hours {
		req, hits = req+h.Requests, hits+h.Hits
	}
	if req != 2 || hits != 1 {
		t.Errorf("after a restart the last day's history holds %d requests, %d hits; want the 2 and 1 of before", req, hits)
	}
}
