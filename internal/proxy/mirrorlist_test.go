package proxy

import "testing"

func TestRewriteMirrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"mirrorlist", "# comment http://not.a.mirror/\nhttp://m1.example.org/fedora/42/\nhttps://m2.example.org:8443/f/42/\n",
			"# comment http://not.a.mirror/\nhttp://cacher:3142/m1.example.org/fedora/42/\nhttp://cacher:3142/HTTPS///m2.example.org:8443/f/42/\n"},
		{"metalink", `<metalink xmlns="http://www.metalinker.org/"><url protocol="https" type="https">https://m.example.org/x/repodata/repomd.xml</url></metalink>`,
			`<metalink xmlns="http://www.metalinker.org/"><url protocol="https" type="https">http://cacher:3142/HTTPS///m.example.org/x/repodata/repomd.xml</url></metalink>`},
	} {
		if got := string(rewriteMirrors([]byte(tc.in), "cacher:3142")); got != tc.want {
			t.Errorf("%s:\ngot  %q\nwant %q", tc.name, got, tc.want)
		}
	}
}
