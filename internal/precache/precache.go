// Package precache fetches through a running pkg-cacher the packages an
// index lists by name, so that a fleet's first install finds them cached.
package precache

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"

	"vzpkg2/internal/repofmt"
)

// Report is what Run fetched.
type Report struct {
	Fetched int      // packages fetched (or found cached)
	Bytes   int64    // their bytes
	Missing []string // names the index does not list
}

// Run fetches the index at indexURL (a Packages or Sources index, or a
// primary.xml, possibly compressed, as a client reaches it through
// pkg-cacher) with client, then every file it lists for one of names (all
// versions and architectures it lists). progress is told of each file
// before it is fetched.
func Run(ctx context.Context, client *http.Client, indexURL string, names []string, progress func(done, total int, file string)) (Report, error) {
	base, err := url.Parse(indexURL)
	if err != nil {
		return Report{}, fmt.Errorf("index URL %q: %w", indexURL, err)
	}
	body, err := get(ctx, client, indexURL)
	if err != nil {
		return Report{}, err
	}
	defer body.Close()
	index, err := repofmt.Decompress(path.Base(base.Path), body)
	if err != nil {
		return Report{}, fmt.Errorf("%s: %w", indexURL, err)
	}
	defer index.Close()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	found := map[string]bool{}
	var files []string // relative to the repository's root
	var root string    // the root's URL path
	name := path.Base(base.Path)
	switch {
	case strings.Contains(name, "primary.xml"):
		root, _, _ = strings.Cut(base.Path, "/repodata/")
		err = repofmt.ParsePrimary(index, func(e repofmt.RPMEntry) error {
			if want[e.Name] && e.Base == "" {
				found[e.Name] = true
				files = append(files, e.Href)
			}
			return nil
		})
	case strings.HasPrefix(name, "Packages") || strings.HasPrefix(name, "Sources"):
		i := strings.LastIndex(base.Path, "/dists/")
		if i < 0 {
			return Report{}, fmt.Errorf("%s: an apt index outside dists/ says nothing of where its packages are", indexURL)
		}
		root = base.Path[:i]
		err = repofmt.ParsePackages(index, func(e repofmt.Entry) error {
			if want[e.Package] {
				found[e.Package] = true
				files = append(files, e.Path)
			}
			return nil
		})
	default:
		return Report{}, fmt.Errorf("%s is neither a Packages or Sources index nor a primary.xml", indexURL)
	}
	if err != nil {
		return Report{}, fmt.Errorf("%s: %w", indexURL, err)
	}
	var r Report
	for _, n := range names {
		if !found[n] {
			r.Missing = append(r.Missing, n)
		}
	}
	for i, f := range files {
		progress(i, len(files), f)
		u := *base
		u.Path, u.RawPath, u.RawQuery = root+"/"+f, "", ""
		b, err := get(ctx, client, u.String())
		if err != nil {
			return r, err
		}
		n, err := io.Copy(io.Discard, b)
		b.Close()
		if err != nil {
			return r, fmt.Errorf("%s: %w", u.String(), err)
		}
		r.Fetched++
		r.Bytes += n
	}
	progress(len(files), len(files), "")
	return r, nil
}

func get(ctx context.Context, client *http.Client, u string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	return resp.Body, nil
}
