package repofmt

import "testing"

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		path string
		want Class
	}{
		{"/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", Immutable},
		{"/debian/pool/main/d/debian-installer/foo_1_amd64.udeb", Immutable},
		{"/debian/pool/main/h/hello/hello_2.10-3.dsc", Immutable},
		{"/debian/pool/main/h/hello/hello_2.10.orig.tar.gz", Immutable},
		{"/debian/pool/main/h/hello/hello_2.10-3.debian.tar.xz", Immutable},
		{"/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/0123abcd", Immutable},
		{"/debian/dists/bookworm/InRelease", Volatile},
		{"/debian/dists/bookworm/Release", Volatile},
		{"/debian/dists/bookworm/Release.gpg", Volatile},
		{"/debian/dists/bookworm/main/binary-amd64/Packages.xz", Volatile},
		{"/debian/dists/bookworm/main/i18n/Translation-en.bz2", Volatile},
		{"/debian/dists/bookworm/main/Contents-amd64.gz", Volatile},
		{"/debian/dists/bookworm/main/installer-amd64/current/images/SHA256SUMS", Volatile},
		{"/fedora/42/x86_64/os/Packages/b/bash-5.2-1.fc42.x86_64.rpm", Immutable},
		{"/fedora/42/x86_64/os/repodata/repomd.xml", Volatile},
		{"/fedora/42/x86_64/os/repodata/3f0a9c1e5a2b4c6d7e8f90123456789abcdef0123456789abcdef0123456789-primary.xml.zst", Immutable},
		{"/repo/repodata/primary.xml.gz", Volatile},
		{"/some/unknown/file.txt", Volatile},
		{"/", Volatile},
	} {
		t.Run(tc.path, func(t *testing.T) {
			if got := Classify(tc.path); got != tc.want {
				t.Errorf("Classify(%q) = %v, want %v", tc.path, got, tc.want)
			}
		})
	}
}
