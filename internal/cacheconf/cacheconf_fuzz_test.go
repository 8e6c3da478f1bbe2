package cacheconf

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary files to Parse. It must not panic; an error must
// be an *Error naming the file and the line where the bad entry starts (the
// lines before it parse); an accepted file must give a usable Config, and
// reading it a second time must change nothing.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("../../etc/pkg-cacher.conf")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		string(example),
		// TestParse and TestErrors.
		"# a comment\ncache_dir = /srv/cache   # trailing comment\ndaemon_port=8080\noffline_mode = 1\nvolatile_ttl = 1m30s\n" +
			"path_map = debian deb.debian.org/debian \\\n           https://mirror.example.org/debian ; \\\n           ubuntu archive.ubuntu.com/ubuntu\n" +
			"allowed_locations = deb.debian.org, example.org/repo; 127.0.0.1:8080\nallowed_hosts = 10.0.0.0/8, 192.168.1.7\n",
		"cache_dir = /x\n\ncahce_dir = /y\n",
		"daemon_port = 99999\n",
		"# c\ncache_dir /x\n",
		"path_map = debian \\\n  deb.debian.org/debian ; \\\n  x\n",
		"offline_mode = maybe\n",
		"volatile_ttl = soon\n",
		"allowed_locations = deb.debian.org, exa$mple.org/x\n",
		"allowed_hosts = 10.0.0.0/99\n",
		"path_map = deb.debian.org deb.debian.org/debian\n",
		"path_map = d a.org; d b.org\n",
		"path_map = d ftp://a.org/x\n",
		"allowed_locations = *\r\nallowed_hosts = *\r\nfetch_timeout = 1\r\nconnect_timeout = 500ms\r\n",
		"daemon_addr = 127.0.0.1\nlogdir =\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, conf string) {
		c := Defaults()
		err := c.Parse("fuzz.conf", strings.NewReader(conf))
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %T %q, want an *Error naming the file and line", err, err)
			}
			lines := strings.Split(conf, "\n")
			if ce.File != "fuzz.conf" || ce.Line < 1 || ce.Line > len(lines) || ce.Msg == "" {
				t.Fatalf("got error %q for a %d-line file, want fuzz.conf:LINE: message", err, len(lines))
			}
			// The error may name a line inside an entry continued with \:
			// the entries before the one holding that line must parse.
			start := ce.Line
			for start > 1 && continued(lines[start-2]) {
				start--
			}
			before := strings.Join(lines[:start-1], "\n")
			if perr := Defaults().Parse("fuzz.conf", strings.NewReader(before)); perr != nil {
				t.Fatalf("error %q, but the lines before line %d (where its entry starts) fail too: %v", err, start, perr)
			}
			return
		}
		checkConfig(t, c)
		again := *c
		if err := again.Parse("fuzz.conf", strings.NewReader(conf)); err != nil || !reflect.DeepEqual(&again, c) {
			t.Fatalf("reading the file twice: got %+v, %v; want %+v", &again, err, c)
		}
	})
}

// checkConfig fails t if c breaks what the rest of pkg-cacher relies on.
func checkConfig(t *testing.T, c *Config) {
	t.Helper()
	if c.CacheDir == "" || c.DaemonPort < 0 || c.DaemonPort > 65535 {
		t.Fatalf("cache_dir %q, daemon_port %d", c.CacheDir, c.DaemonPort)
	}
	if c.VolatileTTL < 0 || c.FetchTimeout < 0 || c.ConnectTimeout < 0 {
		t.Fatalf("negative duration: volatile_ttl %v, fetch_timeout %v, connect_timeout %v", c.VolatileTTL, c.FetchTimeout, c.ConnectTimeout)
	}
	names := map[string]bool{}
	for _, pm := range c.PathMap {
		if pm.Name == "" || strings.ContainsAny(pm.Name, "/.:") || names[pm.Name] || len(pm.Mirrors) == 0 {
			t.Fatalf("path_map entry %q (seen before: %v) with %d mirrors", pm.Name, names[pm.Name], len(pm.Mirrors))
		}
		names[pm.Name] = true
		if c.Map(pm.Name) == nil {
			t.Fatalf("Map(%q) = nil for a configured path_map entry", pm.Name)
		}
		for _, m := range pm.Mirrors {
			if (m.Scheme != "http" && m.Scheme != "https") || m.Host == "" || m.RawQuery != "" || m.Fragment != "" || strings.HasSuffix(m.Path, "/") {
				t.Fatalf("path_map %s: mirror %q is not scheme://host[/path] without a trailing slash", pm.Name, m)
			}
		}
	}
	for _, l := range c.AllowedLocations {
		if l.Host == "" || l.Host != strings.ToLower(l.Host) || (l.Path != "" && (l.Path[0] != '/' || strings.HasSuffix(l.Path, "/"))) {
			t.Fatalf("allowed_locations entry %+v", l)
		}
	}
	for _, list := range [][]AddrRange{c.Clients.Allow, c.Clients.Allow6} {
		for _, r := range list {
			denied := false
			for _, d := range append(c.Clients.Deny, c.Clients.Deny6...) {
				denied = denied || d.contains(r.Lo)
			}
			if !r.Lo.IsValid() || r.Hi.Less(r.Lo) || !denied && !c.ClientAllowed(r.Lo.AsSlice()) {
				t.Fatalf("allowed_hosts entry %v does not allow its own first address", r)
			}
		}
	}
}

// TestParseLongLine is the case FuzzParse cannot reach quickly: a line longer
// than Parse reads at once must give FILE:LINE too, the line where its entry
// starts.
func TestParseLongLine(t *testing.T) {
	long := strings.Repeat("a", 1<<20)
	for _, tc := range []struct {
		name, conf, want string
	}{
		{"plain", "daemon_port = 1\ncache_dir = /" + long + "\n", "long.conf:2: line longer than 1 MiB"},
		{"continued", "daemon_port = 1\npath_map = x \\\n  y" + long + "\n", "long.conf:2: line longer than 1 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Defaults().Parse("long.conf", strings.NewReader(tc.conf))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("got %v, want an error starting %q", err, tc.want)
			}
		})
	}
}

// continued reports whether a configuration line continues on the next.
func continued(line string) bool {
	line, _, _ = strings.Cut(line, "#")
	return strings.HasSuffix(strings.TrimRight(line, " \t\r"), `\`)
}
