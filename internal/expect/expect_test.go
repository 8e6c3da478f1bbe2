package expect

import (
	"encoding/hex"
	"strings"
	"testing"
)

func TestExpectFromNames(t *testing.T) {
	const sum = "2e268cfc18d4545e6d368db9ff18480740ee3d68d0ca431caf5101068ffd097b"
	ix := New()
	for _, tc := range []struct {
		key  string
		want bool
	}{
		{"deb.debian.org/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/" + sum, true},
		{"debian:/dists/bookworm/main/i18n/by-hash/SHA256/" + sum, true},
		{"mirror.example/fedora/42/repodata/" + sum + "-primary.xml.zst", true},
		{"deb.debian.org/debian/dists/bookworm/main/binary-amd64/by-hash/MD5Sum/0123456789abcdef0123456789abcdef", false},
		{"deb.debian.org/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/" + sum[:63], false},
		{"mirror.example/fedora/42/repodata/repomd.xml", false},
		{"deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", false},
	} {
		got, ok := ix.Expect(tc.key)
		if ok != tc.want || (ok && (got.SHA256 != sum || got.Size != -1)) {
			t.Errorf("Expect(%s) = %+v, %v; want known: %v", tc.key, got, ok, tc.want)
		}
	}
}

func TestDecodeSum(t *testing.T) {
	const sum = "2e268cfc18d4545e6d368db9ff18480740ee3d68d0ca431caf5101068ffd097b"
	for _, tc := range []struct {
		name, sha string
		want      bool
	}{
		{"lowercase hex", sum, true},
		{"upper case", strings.ToUpper(sum), false},
		{"short", sum[:62], false},
		{"long", sum + "00", false},
		{"not hex", sum[:63] + "g", false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := decodeSum(tc.sha)
			if ok != tc.want || ok && hex.EncodeToString(got[:]) != sum {
				t.Errorf("decodeSum(%q) = %x, %v; want %v", tc.sha, got, ok, tc.want)
			}
		})
	}
}
