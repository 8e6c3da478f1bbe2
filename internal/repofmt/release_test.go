package repofmt

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"vzpkg2/internal/repotest"
)

// testDebs are the packages of the repositories built by the apt tests.
var testDebs = []repotest.Deb{
	{Name: "app", Version: "1.0-1", Depends: []string{"libfoo"}, Size: 3000},
	{Name: "libfoo", Version: "2:0.9+dfsg-3", Size: 70000},
}

// sha256File returns the size and SHA-256 of the file at name.
func sha256File(t *testing.T, name string) (int64, string) {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return int64(len(data)), hex.EncodeToString(sum[:])
}

func parseReleaseFile(t *testing.T, name string) *Release {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rel, err := ParseRelease(f)
	if err != nil {
		t.Fatalf("ParseRelease(%s): %v", name, err)
	}
	return rel
}

// TestParseReleaseBuiltRepo parses the Release and InRelease files that
// apt-ftparchive and gpg --clearsign make, and checks every listed
// checksum against the file on disk.
func TestParseReleaseBuiltRepo(t *testing.T) {
	repo := repotest.BuildAptRepo(t, t.TempDir(), "testing", testDebs)
	dists := filepath.Join(repo.Root, "dists", repo.Suite)
	rel := parseReleaseFile(t, filepath.Join(dists, "Release"))
	in := parseReleaseFile(t, filepath.Join(dists, "InRelease"))
	if !reflect.DeepEqual(in, rel) {
		t.Errorf("InRelease parses to %+v, want the same as Release %+v", in, rel)
	}
	if rel.Suite != "testing" || rel.Codename != "testing" || !rel.AcquireByHash {
		t.Errorf("Suite %q, Codename %q, Acquire-By-Hash %v; want testing, testing, true", rel.Suite, rel.Codename, rel.AcquireByHash)
	}
	if d := time.Since(rel.Date); d < 0 || d > time.Hour {
		t.Errorf("Date %v, want about now", rel.Date)
	}
	files := rel.Files()
	for _, name := range []string{"Packages", "Packages.gz", "Packages.xz"} {
		p := "main/binary-amd64/" + name
		size, sum := sha256File(t, filepath.Join(dists, filepath.FromSlash(p)))
		if got, want := files[p], (Checksum{Size: size, SHA256: sum}); got != want {
			t.Errorf("Files()[%q] = %+v, want %+v", p, got, want)
		}
	}
	if len(files) != 3 {
		t.Errorf("Files() lists %d files, want 3: %v", len(files), files)
	}
}

// TestParseReleaseDebian parses Debian's InRelease for bookworm-security,
// trimmed to a few files (so its signature no longer matches).
func TestParseReleaseDebian(t *testing.T) {
	rel := parseReleaseFile(t, filepath.Join("testdata", "bookworm-security.InRelease"))
	if rel.Suite != "oldstable-security" || rel.Codename != "bookworm-security" || !rel.AcquireByHash {
		t.Errorf("Suite %q, Codename %q, Acquire-By-Hash %v", rel.Suite, rel.Codename, rel.AcquireByHash)
	}
	if want := time.Date(2026, 12, 3, 21, 3, 35, 0, time.UTC); !rel.ValidUntil.Equal(want) {
		t.Errorf("ValidUntil %v, want %v", rel.ValidUntil, want)
	}
	want := map[string]Checksum{
		"main/binary-amd64/Packages":    {2553701, "30beba3da390282e6130d9949f8c269844f0d64183ffbeeb4f482ee97e204fcf", ""},
		"main/binary-amd64/Packages.xz": {382652, "ef7330ce114335761bec63d65bc38ab781e38998e8d0f8443dd8b5d55c61d6e7", ""},
		"main/binary-amd64/Release":     {143, "05516a7e2e1f29b8f1686eb1e82c1d1142d1ab21c3398de3d3b3da977fcf60e6", ""},
		"main/source/Release":           {144, "aba3736ffd5e7f7c3c09102ad650ae6b8016286f1f8b03e3427bb1dce5f2d305", ""},
		"main/source/Sources":           {8429343, "e7d8fc8b75358be0353a6edf421e2a347342832de80bebac9cd3a5203a8e36d1", ""},
		"main/source/Sources.xz":        {304164, "4400a68c71640358aacb8379c896935e806a7d15766ed809c5b4beb1fe11f2f9", ""},
	}
	if got := rel.Files(); !reflect.DeepEqual(got, want) {
		t.Errorf("Files() = %v\nwant %v", got, want)
	}
}

const (
	sumA = "2e268cfc18d4545e6d368db9ff18480740ee3d68d0ca431caf5101068ffd097b"
	sumB = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

func TestParseRelease(t *testing.T) {
	sha512 := strings.Repeat("ab", 64)
	for _, tc := range []struct {
		name, in string
		want     map[string]Checksum
		byHash   bool
		wantErr  string // substring of the error; "" for none
	}{
		{
			name: "all hashes",
			in: "Suite: s\nMD5Sum:\n d41d8cd98f00b204e9800998ecf8427e 0 only-md5\n" +
				"SHA256:\n " + strings.ToUpper(sumA) + " 12 main/Packages\n" +
				"SHA512:\n " + sha512 + " 12 main/Packages\n " + sha512 + " 3 main/only512\n",
			want: map[string]Checksum{
				"main/Packages": {12, sumA, sha512},
				"main/only512":  {3, "", sha512},
			},
		},
		{
			name:   "dash-escaped clearsigned body with CRLF",
			in:     "-----BEGIN PGP SIGNED MESSAGE-----\r\nHash: SHA512\r\n\r\n- Suite: s\r\nAcquire-By-Hash: True\r\nSHA256:\r\n " + sumA + " 1 a\r\n-----BEGIN PGP SIGNATURE-----\r\nxx\r\n-----END PGP SIGNATURE-----\r\n",
			want:   map[string]Checksum{"a": {1, sumA, ""}},
			byHash: true,
		},
		{name: "empty", in: "", wantErr: "empty Release file"},
		{name: "two paragraphs", in: "Suite: s\n\nSuite: t\n", wantErr: "line 3: more than one paragraph"},
		{name: "short hash", in: "Suite: s\nSHA256:\n abc 1 a\n", wantErr: "line 3: a: \"abc\" is not a 64-digit hex digest"},
		{name: "negative size", in: "SHA256:\n " + sumA + " -1 a\n", wantErr: "line 2: a: bad size \"-1\""},
		{name: "missing column", in: "SHA256:\n " + sumA + " 1\n", wantErr: "line 2: want \"hash size path\""},
		{name: "parent path", in: "SHA256:\n " + sumA + " 1 ../../etc/passwd\n", wantErr: "line 2: \"../../etc/passwd\" is not a clean relative path"},
		{name: "absolute path", in: "SHA256:\n " + sumA + " 1 /a\n", wantErr: "line 2: \"/a\" is not a clean"},
		{name: "sizes disagree", in: "SHA256:\n " + sumA + " 1 a\nSHA512:\n " + sha512 + " 2 a\n", wantErr: "line 4: a: size 2, listed elsewhere with size 1"},
		{name: "listed twice", in: "SHA256:\n " + sumA + " 1 a\n " + sumB + " 1 a\n", wantErr: "line 3: a listed twice under sha256"},
		{name: "duplicate field", in: "SHA256:\n " + sumA + " 1 a\nSHA256:\n", wantErr: "line 3: SHA256 given again (first on line 1)"},
		{name: "list on the field line", in: "SHA256: " + sumA + " 1 a\n", wantErr: "line 1: sha256: want the file list on the lines below"},
		{name: "multi-line Suite", in: "Suite: s\n t\n", wantErr: "line 2: suite: want a single line"},
		{name: "bad date", in: "Suite: s\nDate: yesterday\n", wantErr: "line 2: date: \"yesterday\" is not an RFC 1123 date"},
		{name: "no colon", in: "Suite: s\ngarbage\n", wantErr: "line 2: want \"Field: value\""},
		{name: "continuation first", in: " x\n", wantErr: "line 1: continuation line outside a field"},
		{name: "unsigned clearsigned", in: "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nSuite: s\n", wantErr: "line 4: clearsigned message without a signature"},
		{name: "armor in body", in: "-----BEGIN PGP SIGNED MESSAGE-----\n\nSuite: s\n-----END PGP SIGNATURE-----\n", wantErr: "line 4: unexpected armor line"},
		{name: "long line", in: "Suite: " + strings.Repeat("x", maxLine) + "\n", wantErr: "line 1: longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rel, err := ParseRelease(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := rel.Files(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Files() = %v, want %v", got, tc.want)
			}
			if rel.AcquireByHash != tc.byHash {
				t.Errorf("AcquireByHash = %v, want %v", rel.AcquireByHash, tc.byHash)
			}
		})
	}
}
