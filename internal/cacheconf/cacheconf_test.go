package cacheconf

import (
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	conf := `# a comment
cache_dir = /srv/cache   # trailing comment
daemon_port=8080
offline_mode = 1
volatile_ttl = 1m30s
path_map = debian deb.debian.org/debian \
           https://mirror.example.org/debian ; \
           ubuntu archive.ubuntu.com/ubuntu
allowed_locations = deb.debian.org, example.org/repo; 127.0.0.1:8080
allowed_hosts = 10.0.0.0/8, 192.168.1.7
ca_file = /etc/pkg-cacher/local-ca.pem
`
	c := Defaults()
	if err := c.Parse("test.conf", strings.NewReader(conf)); err != nil {
		t.Fatal(err)
	}
	if c.CacheDir != "/srv/cache" || c.DaemonPort != 8080 || !c.OfflineMode || c.VolatileTTL != 90*time.Second {
		t.Errorf("got cache_dir %q port %d offline %v ttl %v", c.CacheDir, c.DaemonPort, c.OfflineMode, c.VolatileTTL)
	}
	if c.CAFile != "/etc/pkg-cacher/local-ca.pem" {
		t.Errorf("got ca_file %q, want /etc/pkg-cacher/local-ca.pem", c.CAFile)
	}
	if len(c.PathMap) != 2 || c.PathMap[0].Name != "debian" || len(c.PathMap[0].Mirrors) != 2 {
		t.Fatalf("got path_map %+v, want debian with 2 mirrors and ubuntu", c.PathMap)
	}
	if got := c.PathMap[0].Mirrors[1].String(); got != "https://mirror.example.org/debian" {
		t.Errorf("got second debian mirror %q", got)
	}
	if got := c.PathMap[1].Mirrors[0].String(); got != "http://archive.ubuntu.com/ubuntu" {
		t.Errorf("got ubuntu mirror %q", got)
	}
	for _, tc := range []struct {
		host, path string
		want       bool
	}{
		{"deb.debian.org", "/debian/pool/x.deb", true},
		{"deb.debian.org:8080", "/debian", true},
		{"example.org", "/repo/dists/x", true},
		{"example.org", "/repository", false},
		{"example.org", "/other", false},
		{"127.0.0.1:8080", "/x", true},
		{"127.0.0.1:8081", "/x", false},
		{"security.debian.org", "/", false},
	} {
		if got := c.Allowed(tc.host, tc.path); got != tc.want {
			t.Errorf("Allowed(%q, %q) = %v, want %v", tc.host, tc.path, got, tc.want)
		}
	}
}

func TestDefaultsAllowOfficialMirrors(t *testing.T) {
	c := Defaults()
	for _, h := range []string{"deb.debian.org", "security.debian.org", "archive.ubuntu.com", "de.archive.ubuntu.com",
		"dl.fedoraproject.org", "repo.almalinux.org", "dl.rockylinux.org", "mirror.stream.centos.org"} {
		if !c.Allowed(h, "/x") {
			t.Errorf("default config refuses %s", h)
		}
	}
	if c.Allowed("evil.example", "/") {
		t.Error("default config allows evil.example")
	}
	if c.DaemonPort != 3142 {
		t.Errorf("got default port %d, want 3142", c.DaemonPort)
	}
}

func TestExampleConfigIsDefaults(t *testing.T) {
	c, err := Load("../../etc/pkg-cacher.conf", nil)
	if err != nil {
		t.Fatal(err)
	}
	d := Defaults()
	if len(c.AllowedLocations) != len(d.AllowedLocations) || c.CacheDir != d.CacheDir || c.DaemonPort != d.DaemonPort ||
		c.VolatileTTL != d.VolatileTTL || c.FetchTimeout != d.FetchTimeout || c.LogDir != d.LogDir || c.CAFile != d.CAFile ||
		c.WriteTimeout != d.WriteTimeout || c.MaxFileSize != d.MaxFileSize || c.NegativeTTL != d.NegativeTTL ||
		!reflect.DeepEqual(c.PathMap, d.PathMap) || !reflect.DeepEqual(c.Clients, d.Clients) || c.CleanCache != d.CleanCache {
		t.Errorf("etc/pkg-cacher.conf does not match the built-in defaults: got %+v, want %+v", c, d)
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, conf, want string
	}{
		{"unknown key", "cache_dir = /x\n\ncahce_dir = /y\n", `bad.conf:3: unknown key "cahce_dir" (did you mean "cache_dir"?)`},
		{"bad port", "daemon_port = 99999\n", `bad.conf:1: daemon_port "99999" is not a port number`},
		{"no equals", "# c\ncache_dir /x\n", "bad.conf:2: \"cache_dir /x\" is not a `key = value` line"},
		{"continued line", "path_map = debian \\\n  deb.example.org/debian ; \\\n  x\n", `bad.conf:3: path_map: entry "x" has no mirror`},
		{"continued list", "# c\nallowed_locations = deb.debian.org, \\\n  example.org, \\\n  exa$mple.org/x, \\\n  other.org\n", `bad.conf:4: allowed_locations: "exa$mple.org/x" is not a host`},
		{"continued map twice", "path_map = d a.org; \\\n d b.org\n", `bad.conf:2: path_map: name "d" is mapped twice`},
		{"address with six parts", "daemon_addr = 1.2.3.4.5.6\n", `bad.conf:1: daemon_addr "1.2.3.4.5.6" is not an IP address or host name`},
		{"fetch_timeout 0", "fetch_timeout = 0\n", `bad.conf:1: fetch_timeout: "0" is less than a second`},
		{"write_timeout 0", "write_timeout = 0s\n", `bad.conf:1: write_timeout: "0s" is less than a second`},
		{"bad size", "max_file_size = 8 gigs\n", `bad.conf:1: max_file_size: "8 gigs" is not a size`},
		{"bad bool", "offline_mode = maybe\n", `bad.conf:1: offline_mode "maybe": want 0 or 1`},
		{"bad duration", "volatile_ttl = soon\n", `bad.conf:1: volatile_ttl: "soon" is not a number of seconds`},
		{"bad location", "allowed_locations = deb.debian.org, exa$mple.org/x\n", `bad.conf:1: allowed_locations: "exa$mple.org/x" is not a host`},
		{"bad cidr", "allowed_hosts = 10.0.0.0/99\n", `bad.conf:1: allowed_hosts: "10.0.0.0/99" is not an IPv4 CIDR network`},
		{"map name like host", "path_map = deb.debian.org deb.debian.org/debian\n", `bad.conf:1: path_map: name "deb.debian.org" must be one path segment`},
		{"map twice", "path_map = d a.org; d b.org\n", `bad.conf:1: path_map: name "d" is mapped twice`},
		{"bad mirror", "path_map = d ftp://a.org/x\n", `bad.conf:1: path_map: mirror "ftp://a.org/x" is not host/path`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Defaults().Parse("bad.conf", strings.NewReader(tc.conf))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("got error %v, want prefix %q", err, tc.want)
			}
		})
	}
}

func TestLoadOverrides(t *testing.T) {
	f := filepath.Join(t.TempDir(), "p.conf")
	if err := os.WriteFile(f, []byte("daemon_port = 8080\ncache_dir = /a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(f, []string{"daemon_port=9090", "offline_mode = 1"})
	if err != nil {
		t.Fatal(err)
	}
	if c.DaemonPort != 9090 || c.CacheDir != "/a" || !c.OfflineMode {
		t.Errorf("got port %d dir %q offline %v, want 9090 /a true", c.DaemonPort, c.CacheDir, c.OfflineMode)
	}
	_, err = Load(f, []string{"bogus"})
	if err == nil || !strings.Contains(err.Error(), `command line: argument 1 "bogus" is not key=value`) {
		t.Errorf("got %v, want a command-line error", err)
	}
	_, err = Load(f, []string{"daemon_prot=1"})
	if err == nil || !strings.Contains(err.Error(), `command line: unknown key "daemon_prot" (did you mean "daemon_port"?)`) {
		t.Errorf("got %v, want an unknown-key error with a suggestion", err)
	}
}

// The original's access lists: addresses, networks, ranges and *, IPv4 and
// IPv6 apart, IPv4-mapped IPv6 as IPv4, 127.0.0.1 always allowed.
func TestClients(t *testing.T) {
	c := Defaults()
	err := c.Parse("acl.conf", strings.NewReader(`allowed_hosts = 10.0.0.0/8, 192.168.0.3-192.168.0.56; 172.16.5.5
denied_hosts = 10.1.0.0/16
allowed_hosts_6 = fd00::/8
denied_hosts_6 = fd00::bad
`))
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]bool{
		"10.2.3.4": true, "10.1.2.3": false, "192.168.0.3": true, "192.168.0.56": true, "192.168.0.57": false,
		"172.16.5.5": true, "172.16.5.6": false, "127.0.0.1": true, "127.0.0.2": false,
		"::ffff:10.2.3.4": true, "::ffff:10.1.0.1": false,
		"fd00::1": true, "fd00::bad": false, "::1": false, "2001:db8::1": false,
	} {
		if got := c.ClientAllowed(net.ParseIP(ip)); got != want {
			t.Errorf("client %s allowed: %v, want %v", ip, got, want)
		}
	}
	d := Defaults()
	if !d.ClientAllowed(net.ParseIP("203.0.113.9")) || !d.ClientAllowed(net.ParseIP("2001:db8::9")) {
		t.Error("by default every client is allowed")
	}
	if err := d.Parse("acl.conf", strings.NewReader("allowed_hosts =\n")); err != nil {
		t.Fatal(err)
	}
	if d.ClientAllowed(net.ParseIP("10.0.0.1")) || !d.ClientAllowed(net.ParseIP("127.0.0.1")) {
		t.Error("an empty allowed_hosts allows 127.0.0.1 only, as the original's")
	}
	for _, bad := range []string{"allowed_hosts = fd00::1\n", "allowed_hosts_6 = 10.0.0.1\n", "allowed_hosts = 10.0.0.9-10.0.0.1\n", "denied_hosts = 10.0.0.0/33\n"} {
		if err := Defaults().Parse("acl.conf", strings.NewReader(bad)); err == nil {
			t.Errorf("%q was accepted", strings.TrimSpace(bad))
		}
	}
}
