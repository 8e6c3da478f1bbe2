package expect

import (
	"bytes"
	"strings"
	"testing"
)

// checkFile holds what every parsed entry must satisfy: a clean relative
// path (no dot segments, not absolute) and a non-negative or unknown size.
func checkFile(t *testing.T, f file) {
	t.Helper()
	if !clean(f.path) || strings.HasPrefix(f.path, "/") || strings.Contains("/"+f.path+"/", "/../") {
		t.Fatalf("entry with unsafe path %q", f.path)
	}
	if f.size < -1 {
		t.Fatalf("entry %q with size %d", f.path, f.size)
	}
}

func FuzzReleaseFiles(f *testing.F) {
	f.Add([]byte("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nSuite: stable\nSHA256:\n 2e268cfc18d4545e6d368db9ff18480740ee3d68d0ca431caf5101068ffd097b 1234 main/binary-amd64/Packages.xz\n-----BEGIN PGP SIGNATURE-----\n"))
	f.Add([]byte("MD5Sum:\n abc 1 x\nSHA256:\n abc 12 ../../etc/passwd\n abc -1 y\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		files, err := releaseFiles(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, fl := range files {
			checkFile(t, fl)
		}
	})
}

func FuzzPackagesFiles(f *testing.F) {
	f.Add([]byte("Package: app\nFilename: pool/main/a/app/app_1_all.deb\nSize: 12\nSHA256: 2e268cfc18d4545e6d368db9ff18480740ee3d68d0ca431caf5101068ffd097b\n\nPackage: b\nFilename: /etc/shadow\nSHA256: x\n"))
	f.Add([]byte("Filename: ../x\nSize: -5\nSHA256: y\n Description continued: line\n\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		packagesFiles(bytes.NewReader(data), func(fl file) { checkFile(t, fl) })
	})
}

func FuzzRepomdFiles(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0"?><repomd xmlns="http://linux.duke.edu/metadata/repo"><data type="primary"><checksum type="sha256">2e268cfc18d4545e6d368db9ff18480740ee3d68d0ca431caf5101068ffd097b</checksum><location href="repodata/2e26-primary.xml.gz"/><size>123</size></data><data type="other"><checksum type="sha1">ab</checksum><location href="../x"/></data></repomd>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		files, primary, err := repomdFiles(bytes.NewReader(data))
		if err != nil {
			return
		}
		found := primary == ""
		for _, fl := range files {
			checkFile(t, fl)
			found = found || fl.path == primary
		}
		if !found {
			t.Fatalf("primary %q is not among the files", primary)
		}
	})
}

func FuzzPrimaryFiles(f *testing.F) {
	f.Add([]byte(`<metadata><package type="rpm"><name>app</name><checksum type="sha256" pkgid="YES">2e268cfc18d4545e6d368db9ff18480740ee3d68d0ca431caf5101068ffd097b</checksum><size package="1234"/><location href="Packages/a/app-1.0-1.noarch.rpm"/></package><package><checksum type="sha256">x</checksum><location xml:base="http://elsewhere/" href="y.rpm"/></package></metadata>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		primaryFiles(bytes.NewReader(data), func(fl file) { checkFile(t, fl) })
	})
}
