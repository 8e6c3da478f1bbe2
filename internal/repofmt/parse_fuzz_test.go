package repofmt

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// checkEntry holds what every parsed file must satisfy: a clean relative
// path, a lowercase hex digest of the right length when given, and a size
// that is not negative (-1 only where "unknown" is allowed).
func checkEntry(t *testing.T, p string, size, minSize int64, digest Digest) {
	t.Helper()
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains("/"+p+"/", "/../") || strings.Contains("/"+p+"/", "/./") || strings.Contains(p, "//") {
		t.Fatalf("entry with unsafe path %q", p)
	}
	if size < minSize {
		t.Fatalf("entry %q with size %d", p, size)
	}
	if digest.Value != "" && !isHex(digest.Value, digestLen[digest.Type]) {
		t.Fatalf("entry %q with %s digest %q", p, digest.Type, digest.Value)
	}
}

// checkLineError fails unless err says which line it is about.
func checkLineError(t *testing.T, err error) {
	t.Helper()
	if err != nil && !strings.Contains(err.Error(), "line ") && err.Error() != "empty Release file" {
		t.Fatalf("error without a line number: %v", err)
	}
}

func FuzzParseRelease(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join("testdata", "bookworm-security.InRelease")); err == nil {
		f.Add(data)
	}
	f.Add([]byte("Suite: s\nDate: Thu, 26 Nov 2026 21:03:35 UTC\nMD5Sum:\n d41d8cd98f00b204e9800998ecf8427e 0 x\nSHA256:\n " + sumA + " 12 main/Packages\n " + sumB + " 0 ../x\n"))
	f.Add([]byte("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n- Suite: s\nSHA512:\n " + strings.Repeat("a", 128) + " 1 a\n-----BEGIN PGP SIGNATURE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rel, err := ParseRelease(bytes.NewReader(data))
		checkLineError(t, err)
		if err != nil {
			return
		}
		for p, c := range rel.Files() {
			if c.SHA256 == "" && c.SHA512 == "" {
				t.Fatalf("file %q listed without a digest", p)
			}
			checkEntry(t, p, c.Size, 0, Digest{"sha256", c.SHA256})
			checkEntry(t, p, c.Size, 0, Digest{"sha512", c.SHA512})
		}
		// The same body clearsigned parses the same.
		if bytes.HasPrefix(data, []byte("-----")) || bytes.ContainsAny(data, "\r") {
			return
		}
		var signed bytes.Buffer
		signed.WriteString(pgpSigned + "\nHash: SHA256\n\n")
		for l := range strings.Lines(string(data)) {
			if strings.HasPrefix(l, "-") {
				signed.WriteString("- ")
			}
			signed.WriteString(strings.TrimSuffix(l, "\n") + "\n")
		}
		signed.WriteString(pgpSignature + "\n\nAAAA\n-----END PGP SIGNATURE-----\n")
		in, err := ParseRelease(&signed)
		if err != nil || !reflect.DeepEqual(in, rel) {
			t.Fatalf("clearsigned, the file parses to %+v, %v; want %+v", in, err, rel)
		}
	})
}

func FuzzParsePackages(f *testing.F) {
	f.Add([]byte("Package: app\nVersion: 1\nFilename: pool/main/a/app/app_1_all.deb\nSize: 12\nSHA256: " + sumA + "\nDescription: x\n more\n\nPackage: b\nFilename: /etc/shadow\nSize: 1\n"))
	f.Add([]byte(sourcesStanza))
	f.Add([]byte("Filename: ../x\nSize: -5\nSHA256: y\n Description continued: line\n\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		err := ParsePackages(bytes.NewReader(data), func(e Entry) error {
			if e.Package == "" {
				t.Fatalf("entry %q without a package name", e.Path)
			}
			checkEntry(t, e.Path, e.Size, 0, Digest{"sha256", e.SHA256})
			return nil
		})
		checkLineError(t, err)
	})
}

func FuzzParseRepomd(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0"?><repomd xmlns="http://linux.duke.edu/metadata/repo"><revision>1</revision><data type="primary"><checksum type="sha256">` + sumA + `</checksum><open-checksum type="sha512">` + strings.Repeat("0", 128) + `</open-checksum><location href="repodata/2e26-primary.xml.gz"/><size>123</size></data><data type="other"><checksum type="sha">ab</checksum><location xml:base="http://x/" href="../x"/></data></repomd>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		md, err := ParseRepomd(bytes.NewReader(data))
		checkLineError(t, err)
		if err != nil {
			return
		}
		for _, d := range md.Data {
			if d.Checksum.Value == "" {
				t.Fatalf("data %q without a checksum", d.Href)
			}
			checkEntry(t, d.Href, d.Size, -1, d.Checksum)
			checkEntry(t, d.Href, d.OpenSize, -1, d.OpenChecksum)
		}
	})
}

func FuzzParsePrimary(f *testing.F) {
	f.Add([]byte(`<metadata><package type="rpm"><name>app</name><arch>noarch</arch><version epoch="0" ver="1" rel="1"/><checksum type="sha256" pkgid="YES">` + sumA + `</checksum><size package="1234"/><location href="Packages/a/app-1-1.noarch.rpm"/></package><package><checksum type="sha1">x</checksum><location xml:base="http://elsewhere/" href="y.rpm"/></package></metadata>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		err := ParsePrimary(bytes.NewReader(data), func(e RPMEntry) error {
			if e.Checksum.Value == "" {
				t.Fatalf("package %q without a checksum", e.Href)
			}
			checkEntry(t, e.Href, e.Size, -1, e.Checksum)
			return nil
		})
		checkLineError(t, err)
	})
}
