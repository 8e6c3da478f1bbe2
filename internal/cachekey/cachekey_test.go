package cachekey

import "testing"

func TestKeys(t *testing.T) {
	for _, tc := range []struct{ name, got, want string }{
		{"http", ForURL("http", "deb.debian.org", "/debian/pool/g++_1~2.deb", ""), "deb.debian.org/debian/pool/g++_1~2.deb"},
		{"https", ForURL("https", "deb.debian.org", "/debian/pool/a.deb", ""), "https://deb.debian.org/debian/pool/a.deb"},
		{"question mark in a name", ForURL("http", "h", "/q.deb?v=1", ""), "h/q.deb%3Fv=1"},
		{"query", ForURL("http", "h", "/q.deb", "v=1"), "h/q.deb?v=1"},
		{"percent in a name", ForURL("http", "h", "/a%b", ""), "h/a%25b"},
		{"path_map", ForMap("debian", "/dists/x/InRelease", ""), "debian:/dists/x/InRelease"},
		{"dir", Dir("https://h/debian/dists/x/InRelease"), "https://h/debian/dists/x"},
		{"dir drops the query", Dir("h/repodata/repomd.xml?a=b/c"), "h/repodata"},
		{"join escapes", Join("h/debian", "pool/a b?.deb"), "h/debian/pool/a%20b%3F.deb"},
		{"canonical host", CanonicalHost("https", "Deb.Debian.ORG:443"), "deb.debian.org"},
		{"canonical IPv6", CanonicalHost("http", "[::1]:80"), "[::1]"},
		{"other port kept", CanonicalHost("http", "h:8080"), "h:8080"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}
