package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"vzpkg2/internal/atomicfile"
	"vzpkg2/internal/cache"
)

// Disk is what the status page shows of the cache's disk; the server that
// owns the store gives it (Policy.Disk).
type Disk struct {
	Used       int64            `json:"used_bytes"`     // bytes of the cached bodies
	Cap        int64            `json:"cap_bytes"`      // max_size; 0: none
	Free       int64            `json:"free_bytes"`     // free on cache_dir's file system
	ByRepo     map[string]int64 `json:"-"`              // bytes by repository
	LastExpiry time.Time        `json:"last_expiry"`    // when the last expiry pass ran; zero: none yet
	Removed    int              `json:"last_removed"`   // files it removed
	Freed      int64            `json:"last_freed"`     // bytes it freed
	Error      string           `json:"error,omitzero"` // why some of the above is unknown
}

// counts are the requests of one repository, or of one hour or day.
type counts struct {
	Requests int64 `json:"requests"`
	Hits     int64 `json:"hits"`
	Served   int64 `json:"served_bytes"`   // bytes sent to clients
	Upstream int64 `json:"upstream_bytes"` // bytes fetched from upstream
}

// bucket is counts over one hour or day, starting at Start (Unix seconds).
type bucket struct {
	Start int64 `json:"start"`
	counts
}

// history keeps counts for the last 24 hours and the last 30 days; it
// survives a restart in a file.
type history struct {
	Hours []bucket `json:"hours"` // oldest first, at most 24
	Days  []bucket `json:"days"`  // oldest first, at most 30
}

// add counts c into the hour and the day of t.
func (h *history) add(t time.Time, c counts) {
	h.Hours = addTo(h.Hours, t.Truncate(time.Hour).Unix(), c, 24)
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	h.Days = addTo(h.Days, day.Unix(), c, 30)
}

func addTo(bs []bucket, start int64, c counts, keep int) []bucket {
	if len(bs) == 0 || bs[len(bs)-1].Start != start {
		bs = append(bs, bucket{Start: start})
		if len(bs) > keep {
			bs = slices.Delete(bs, 0, len(bs)-keep)
		}
	}
	b := &bs[len(bs)-1]
	b.Requests += c.Requests
	b.Hits += c.Hits
	b.Served += c.Served
	b.Upstream += c.Upstream
	return bs
}

// report gathers what the status page shows.
type report struct {
	mu     sync.Mutex // protects everything below
	total  counts
	byRepo map[string]*counts
	hist   history
}

func newReport() *report { return &report{byRepo: map[string]*counts{}} }

// served counts a request answered with status and n body bytes, of the
// repository repo ("" for pkg-cacher's own pages).
func (r *report) served(now time.Time, repo string, status cache.Status, n int64) {
	c := counts{Requests: 1, Served: n}
	if status == cache.Hit || status == cache.Revalidated || status == cache.Joined {
		c.Hits = 1
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.add(now, repo, c)
}

// fetched counts n bytes fetched from upstream for repo.
func (r *report) fetched(now time.Time, repo string, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.add(now, repo, counts{Upstream: n})
}

func (r *report) add(now time.Time, repo string, c counts) {
	for _, t := range []*counts{&r.total, r.repo(repo)} {
		t.Requests += c.Requests
		t.Hits += c.Hits
		t.Served += c.Served
		t.Upstream += c.Upstream
	}
	r.hist.add(now.UTC(), c)
}

func (r *report) repo(name string) *counts {
	c := r.byRepo[name]
	if c == nil {
		c = &counts{}
		r.byRepo[name] = c
	}
	return c
}

// repoOfShow is the repository of a logged URL: the path_map name of
// /NAME/..., or the host of http://HOST/....
func repoOfShow(show string) string {
	if name, ok := strings.CutPrefix(show, "/"); ok {
		name, _, _ = strings.Cut(name, "/")
		return name
	}
	if u, err := url.Parse(show); err == nil {
		return u.Host
	}
	return ""
}

// LoadHistory reads the history a previous run saved at path; a missing
// file is an empty history.
func (h *Handler) LoadHistory(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	h.report.mu.Lock()
	defer h.report.mu.Unlock()
	if err := json.Unmarshal(b, &h.report.hist); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// SaveHistory writes the history to path, for the next run.
func (h *Handler) SaveHistory(path string) error {
	h.report.mu.Lock()
	b, err := json.Marshal(&h.report.hist)
	h.report.mu.Unlock()
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, 0o644)
}

// RepoStatus is one repository's row of the status page.
type RepoStatus struct {
	Name string `json:"name"`
	counts
	Disk int64 `json:"disk_bytes"`
}

// Status is everything the status page shows, also as JSON.
type Status struct {
	Time       time.Time        `json:"time"`
	HitRatio   float64          `json:"hit_ratio"` // hits of all requests
	Total      counts           `json:"total"`
	Saved      int64            `json:"saved_bytes"` // served from the cache, not fetched
	Repos      []RepoStatus     `json:"repositories"`
	Downloads  []cache.Download `json:"downloads"`
	Disk       Disk             `json:"disk"`
	Mismatches int64            `json:"mismatches_refused"`
	Hours      []bucket         `json:"hours"`
	Days       []bucket         `json:"days"`
}

func (h *Handler) status() Status {
	var disk Disk
	if f := h.policy().Disk; f != nil {
		disk = f()
	}
	r := h.report
	r.mu.Lock()
	s := Status{Time: time.Now().UTC(), Total: r.total, Hours: slices.Clone(r.hist.Hours), Days: slices.Clone(r.hist.Days)}
	names := map[string]bool{}
	for n := range r.byRepo {
		names[n] = n != ""
	}
	for n := range disk.ByRepo {
		names[n] = true
	}
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for n, ok := range names {
			if ok && !yield(n) {
				return
			}
		}
	}) {
		row := RepoStatus{Name: n, Disk: disk.ByRepo[n]}
		if c := r.byRepo[n]; c != nil {
			row.counts = *c
		}
		s.Repos = append(s.Repos, row)
	}
	r.mu.Unlock()
	if s.Total.Requests > 0 {
		s.HitRatio = float64(s.Total.Hits) / float64(s.Total.Requests)
	}
	s.Saved = max(0, s.Total.Served-s.Total.Upstream)
	s.Downloads = h.cache.Downloads()
	s.Disk = disk
	s.Mismatches = h.cache.Mismatches()
	return s
}

// serveReport answers the status page (/pkg-cacher/report, also its .json).
func (h *Handler) serveReport(w http.ResponseWriter, r *http.Request) {
	s := h.status()
	if strings.HasSuffix(r.URL.Path, ".json") || r.URL.Query().Get("format") == "json" {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(s)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
	if err := reportTmpl.Execute(w, reportPage{Status: s, DayChart: chart(s.Hours, time.Hour, "15:04"), MonthChart: chart(s.Days, 24*time.Hour, "Jan 2")}); err != nil {
		h.log.Warn("status page", "err", err)
	}
}

type reportPage struct {
	Status
	DayChart, MonthChart template.HTML
}

// chart draws bs as an SVG bar chart of the bytes served a period, the part
// served from the cache darker.
func chart(bs []bucket, period time.Duration, label string) template.HTML {
	const w, h, n = 720, 160, 30
	var top int64 = 1
	for _, b := range bs {
		top = max(top, b.Served, b.Upstream)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img"><rect width="%d" height="%d" fill="#f4f4f4"/>`, w, h+20, w, h)
	if len(bs) == 0 {
		fmt.Fprintf(&sb, `<text x="10" y="20" font-size="12">no requests yet</text>`)
	}
	bw := float64(w) / n
	last := time.Now().Truncate(period)
	if period == 24*time.Hour {
		t := time.Now().UTC()
		last = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	}
	for _, b := range bs {
		slot := n - 1 - int(last.Sub(time.Unix(b.Start, 0))/period)
		if slot < 0 || slot >= n {
			continue
		}
		x := float64(slot) * bw
		served := float64(b.Served) / float64(top) * h
		fromCache := float64(max(0, b.Served-b.Upstream)) / float64(top) * h
		fmt.Fprintf(&sb, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#9ecae1"><title>%s: %s served, %s from upstream</title></rect>`,
			x+1, h-served, bw-2, served, time.Unix(b.Start, 0).UTC().Format(label), bytesText(b.Served), bytesText(b.Upstream))
		fmt.Fprintf(&sb, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#3182bd"/>`, x+1, h-fromCache, bw-2, fromCache)
	}
	fmt.Fprintf(&sb, `<text x="4" y="%d" font-size="11">dark: served from the cache; light: fetched upstream too; peak %s</text></svg>`, h+15, bytesText(top))
	return template.HTML(sb.String())
}

// bytesText is n bytes for people: 1.2 GB.
func bytesText(n int64) string {
	f, units := float64(n), []string{"B", "KB", "MB", "GB", "TB"}
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"bytes":   bytesText,
	"percent": func(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) },
	"progress": func(d cache.Download) string {
		if d.Length <= 0 {
			return bytesText(d.Written)
		}
		return fmt.Sprintf("%s of %s (%.0f%%)", bytesText(d.Written), bytesText(d.Length), 100*float64(d.Written)/float64(d.Length))
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "not yet"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
}).Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>pkg-cacher status</title>
<style>body{font-family:sans-serif;margin:1.5em;max-width:60em} table{border-collapse:collapse} td,th{padding:.2em .8em;text-align:right;border-bottom:1px solid #ddd} td:first-child,th:first-child{text-align:left}</style>
</head><body>
<h1>pkg-cacher status</h1>
<p>At {{when .Time}}. <a href="/pkg-cacher/report.json">The same as JSON</a>.</p>
<table>
<tr><td>Hit ratio</td><td id="hit-ratio">{{percent .HitRatio}}</td></tr>
<tr><td>Requests</td><td id="requests">{{.Total.Requests}}</td></tr>
<tr><td>Served to clients</td><td id="served">{{bytes .Total.Served}}</td></tr>
<tr><td>Fetched from upstream</td><td id="upstream">{{bytes .Total.Upstream}}</td></tr>
<tr><td>Bandwidth saved</td><td id="saved">{{bytes .Saved}}</td></tr>
<tr><td>Files refused for not matching their metadata</td><td>{{.Mismatches}}</td></tr>
<tr><td>Disk used</td><td>{{bytes .Disk.Used}}{{if .Disk.Cap}} of {{bytes .Disk.Cap}} (max_size){{end}}; {{bytes .Disk.Free}} free</td></tr>
<tr><td>Last expiry pass</td><td>{{when .Disk.LastExpiry}}{{if not .Disk.LastExpiry.IsZero}}: {{.Disk.Removed}} files, {{bytes .Disk.Freed}} freed{{end}}</td></tr>
</table>
<h2>Repositories</h2>
<table id="repositories">
<tr><th>repository</th><th>requests</th><th>hits</th><th>served</th><th>from upstream</th><th>on disk</th></tr>
{{range .Repos}}<tr><td>{{.Name}}</td><td>{{.Requests}}</td><td>{{.Hits}}</td><td>{{bytes .Served}}</td><td>{{bytes .Upstream}}</td><td>{{bytes .Disk}}</td></tr>
{{end}}</table>
<h2>Downloads in flight</h2>
{{if .Downloads}}<table>{{range .Downloads}}<tr><td>{{.Key}}</td><td>{{progress .}}</td></tr>{{end}}</table>{{else}}<p>None.</p>{{end}}
<h2>The last day</h2>
{{.DayChart}}
<h2>The last month</h2>
{{.MonthChart}}
</body></html>
`))
