package repofmt

import "testing"

func TestClassify(t *testing.T) {
	const sha256 = "3f0a9c1e5a2b4c6d7e8f90123456789abcdef0123456789abcdef0123456789a"
	for _, tc := range []struct {
		path, query string
		want        Class
	}{
		// apt
		{"/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", "", Immutable},
		{"/debian/pool/main/d/debian-installer/foo_1_amd64.udeb", "", Immutable},
		{"/debian/pool/main/h/hello/hello_2.10-3.dsc", "", Immutable},
		{"/debian/pool/main/h/hello/hello_2.10.orig.tar.gz", "", Immutable},
		{"/debian/pool/main/h/hello/hello_2.10-3.debian.tar.xz", "", Immutable},
		{"/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/0123abcd", "", Immutable},
		{"/debian/dists/bookworm/InRelease", "", Volatile},
		{"/debian/dists/bookworm/Release", "", Volatile},
		{"/debian/dists/bookworm/Release.gpg", "", Volatile},
		{"/debian/dists/bookworm/main/binary-amd64/Packages.xz", "", Volatile},
		{"/debian/dists/bookworm/main/i18n/Translation-en.bz2", "", Volatile},
		{"/debian/dists/bookworm/main/Contents-amd64.gz", "", Volatile},
		{"/debian/dists/bookworm/main/installer-amd64/current/images/SHA256SUMS", "", Volatile},
		// yum/dnf
		{"/fedora/42/x86_64/os/Packages/b/bash-5.2-1.fc42.x86_64.rpm", "", Immutable},
		{"/fedora/42/x86_64/drpms/bash-5.2-1_5.2-2.fc42.x86_64.drpm", "", Immutable},
		{"/fedora/42/x86_64/os/repodata/repomd.xml", "", Volatile},
		{"/fedora/42/x86_64/os/repodata/repomd.xml.asc", "", Volatile},
		{"/fedora/42/x86_64/os/repodata/repomd.xml.key", "", Volatile},
		{"/fedora/42/x86_64/os/repodata/" + sha256 + "-primary.xml.zst", "", Immutable},
		{"/fedora/42/x86_64/os/repodata/" + sha256 + "-filelists.xml.zck", "", Immutable},
		{"/el7/repodata/0123456789abcdef0123456789abcdef01234567-primary.sqlite.bz2", "", Immutable}, // sha1
		{"/repo/repodata/primary.xml.gz", "", Volatile},                                              // --simple-md-filenames
		{"/repo/repodata/comps.xml", "", Volatile},
		{"/metalink", "repo=fedora-42&arch=x86_64", MirrorList},
		{"/mirrorlist", "arch=x86_64&repo=BaseOS-9", MirrorList},
		{"/mirrorlist/9/baseos", "", MirrorList},
		{"/", "release=7&arch=x86_64&repo=os", MirrorList},
		{"/pub/fedora/linux/mirrorlist/x/foo.rpm", "", Immutable},
		// pacman
		{"/archlinux/core/os/x86_64/bash-5.2.037-1-x86_64.pkg.tar.zst", "", Immutable},
		{"/archlinux/core/os/x86_64/bash-5.2.037-1-x86_64.pkg.tar.zst.sig", "", Immutable},
		{"/archlinux/extra/os/x86_64/tzdata-2025a-1-x86_64.pkg.tar.xz", "", Immutable},
		{"/old/any/foo-1.0-1-any.pkg.tar.gz", "", Immutable},
		{"/old/any/foo-1.0-1-any.pkg.tar.gz.sig", "", Immutable},
		{"/archlinux/core/os/x86_64/core.db", "", Volatile},
		{"/archlinux/core/os/x86_64/core.db.sig", "", Volatile},
		{"/archlinux/core/os/x86_64/core.files", "", Volatile},
		{"/archlinux/core/os/x86_64/core.db.tar.gz", "", Volatile},
		{"/archlinux/core/os/x86_64/core.files.tar.zst.sig", "", Volatile},
		// neither
		{"/some/unknown/file.txt", "", Volatile},
		{"/search", "q=x", Volatile},
		{"/", "", Volatile},
	} {
		t.Run(tc.path+"?"+tc.query, func(t *testing.T) {
			if got := Classify(tc.path, tc.query); got != tc.want {
				t.Errorf("Classify(%q, %q) = %v, want %v", tc.path, tc.query, got, tc.want)
			}
		})
	}
}
