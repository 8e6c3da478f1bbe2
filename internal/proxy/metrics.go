package proxy

import (
	"fmt"
	"net/http"
	"sort"
	"sync"

	"vzpkg2/internal/cache"
)

// metrics counts what clients were answered, for /metrics.
type metrics struct {
	mu       sync.Mutex // protects the maps
	requests map[cache.Status]int64
	bytes    map[cache.Status]int64
}

func newMetrics() *metrics {
	return &metrics{requests: map[cache.Status]int64{}, bytes: map[cache.Status]int64{}}
}

func (m *metrics) record(status cache.Status, n int64) {
	m.mu.Lock()
	m.requests[status]++
	m.bytes[status] += n
	m.mu.Unlock()
}

// serve writes the counters in Prometheus' text format.
func (m *metrics) serve(w http.ResponseWriter, c *cache.Cache) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	m.mu.Lock()
	var statuses []string
	for s := range m.requests {
		statuses = append(statuses, string(s))
	}
	sort.Strings(statuses)
	fmt.Fprintln(w, "# HELP pkg_cacher_requests_total Client requests answered, by cache status.")
	fmt.Fprintln(w, "# TYPE pkg_cacher_requests_total counter")
	for _, s := range statuses {
		fmt.Fprintf(w, "pkg_cacher_requests_total{status=%q} %d\n", s, m.requests[cache.Status(s)])
	}
	fmt.Fprintln(w, "# HELP pkg_cacher_response_bytes_total Bytes sent to clients, by cache status.")
	fmt.Fprintln(w, "# TYPE pkg_cacher_response_bytes_total counter")
	for _, s := range statuses {
		fmt.Fprintf(w, "pkg_cacher_response_bytes_total{status=%q} %d\n", s, m.bytes[cache.Status(s)])
	}
	m.mu.Unlock()
	fmt.Fprintln(w, "# HELP pkg_cacher_upstream_mismatches_total Upstream files refused for not matching the repository metadata.")
	fmt.Fprintln(w, "# TYPE pkg_cacher_upstream_mismatches_total counter")
	fmt.Fprintf(w, "pkg_cacher_upstream_mismatches_total %d\n", c.Mismatches())
}
