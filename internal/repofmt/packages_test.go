package repofmt

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"vzpkg2/internal/repotest"
)

// TestParsePackagesBuiltRepo parses the Packages files dpkg-scanpackages
// makes, plain and compressed, and checks every entry against the .deb on
// disk.
func TestParsePackagesBuiltRepo(t *testing.T) {
	repo := repotest.BuildAptRepo(t, t.TempDir(), "testing", testDebs)
	var want []Entry
	for _, d := range testDebs {
		p := repo.Debs[d.Name]
		size, sum := sha256File(t, filepath.Join(repo.Root, filepath.FromSlash(p)))
		want = append(want, Entry{Package: d.Name, Version: d.Version, Architecture: "amd64", Path: p, Size: size, SHA256: sum})
	}
	for _, name := range []string{"Packages", "Packages.gz", "Packages.xz"} {
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(filepath.Join(repo.Root, filepath.FromSlash(path.Join(repo.IndexDir(), name))))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r, err := Decompress(name, f)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var got []Entry
			if err := ParsePackages(r, func(e Entry) error { got = append(got, e); return nil }); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got entries %+v\nwant %+v", got, want)
			}
		})
	}
}

// sourcesStanza is hello's stanza in Debian bookworm's Sources, trimmed.
const sourcesStanza = `Package: hello
Binary: hello
Version: 2.10-3
Maintainer: Santiago Vila <sanvila@debian.org>
Build-Depends: debhelper-compat (= 13)
Architecture: any
Standards-Version: 4.6.2
Format: 3.0 (quilt)
Files:
 9a8e8c6b2b9b8f2c0e1e0e3cfbd8a3d1 1847 hello_2.10-3.dsc
 6cd0ffea3884a4e79330338dcc2987d6 725946 hello_2.10.orig.tar.gz
Checksums-Sha256:
 ` + sumA + ` 1847 hello_2.10-3.dsc
 ` + sumB + ` 725946 hello_2.10.orig.tar.gz
Homepage: https://www.gnu.org/software/hello/
Package-List: 
 hello deb devel optional arch=any
Directory: pool/main/h/hello
Priority: source
Section: devel
`

func TestParsePackages(t *testing.T) {
	binary := "Package: app\nVersion: 1.0\nArchitecture: all\nFilename: pool/main/a/app/app_1.0_all.deb\nSize: 12\nSHA256: " + sumA + "\n"
	for _, tc := range []struct {
		name, in string
		want     []Entry
		wantErr  string
	}{
		{
			name: "binary with continuation lines",
			in:   "Package: app\nDescription: an app\n long text\n .\n more: text\n" + binary[len("Package: app\n"):] + "\n\n",
			want: []Entry{{"app", "1.0", "all", "pool/main/a/app/app_1.0_all.deb", 12, sumA}},
		},
		{
			name: "sources",
			in:   sourcesStanza,
			want: []Entry{
				{"hello", "2.10-3", "any", "pool/main/h/hello/hello_2.10-3.dsc", 1847, sumA},
				{"hello", "2.10-3", "any", "pool/main/h/hello/hello_2.10.orig.tar.gz", 725946, sumB},
			},
		},
		{
			name: "md5 only and no file",
			in:   "Package: old\nFilename: pool/o.deb\nSize: 1\nMD5sum: d41d8cd98f00b204e9800998ecf8427e\n\nPackage: installed\nStatus: install ok installed\n",
			want: []Entry{{Package: "old", Path: "pool/o.deb", Size: 1}},
		},
		{name: "empty", in: "\n\n"},
		{name: "no Package", in: "Filename: pool/a.deb\nSize: 1\n", wantErr: "line 1: stanza without a Package field"},
		{name: "no Size", in: "Package: a\nFilename: pool/a.deb\n", wantErr: "line 1: package a: Filename without Size"},
		{name: "bad Size", in: "\nPackage: a\nFilename: pool/a.deb\nSize: 1e3\n", wantErr: "line 4: package a: bad Size \"1e3\""},
		{name: "bad SHA256", in: "Package: a\nFilename: pool/a.deb\nSize: 1\nSHA256: xyz\n", wantErr: "line 1: package a: SHA256 \"xyz\" is not 64 hex digits"},
		{name: "escaping Filename", in: "Package: a\nFilename: pool/../../a.deb\nSize: 1\n", wantErr: "line 1: package a: Filename \"pool/../../a.deb\" is not a clean relative path"},
		{name: "second stanza broken", in: binary + "\nPackage: b\nbroken line\n", wantErr: "line 9: want \"Field: value\""},
		{name: "sources without Directory", in: "Package: s\nChecksums-Sha256:\n " + sumA + " 1 s.dsc\n", wantErr: "line 2: source s: Checksums-Sha256 without a clean relative Directory"},
		{name: "sources file with a slash", in: "Package: s\nDirectory: pool/s\nChecksums-Sha256:\n " + sumA + " 1 ../s.dsc\n", wantErr: "line 4: source s: \"../s.dsc\" is not a plain file name"},
		{name: "sources short line", in: "Package: s\nDirectory: pool/s\nChecksums-Sha256:\n " + sumA + " s.dsc\n", wantErr: "line 4: source s: want \"sha256 size name\""},
		{name: "multi-line Filename", in: "Package: a\nFilename: a.deb\n ../../b.deb\nSize: 1\n", wantErr: "line 3: filename: want a single line"},
		{name: "duplicate Filename", in: "Package: a\nFilename: a\nFilename: b\n", wantErr: "line 3: Filename given again (first on line 2)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []Entry
			err := ParsePackages(strings.NewReader(tc.in), func(e Entry) error { got = append(got, e); return nil })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParsePackagesStopsOnCallbackError(t *testing.T) {
	in := strings.Repeat("Package: a\nFilename: a.deb\nSize: 1\n\n", 3)
	stop := errors.New("stop")
	calls := 0
	err := ParsePackages(strings.NewReader(in), func(Entry) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("got error %v after %d calls, want %v after 1", err, calls, stop)
	}
}

// TestParseSourcesBuiltRepo parses the Sources index apt-ftparchive makes
// for a source package built by dpkg-source, and checks each file's
// checksum against the file on disk.
func TestParseSourcesBuiltRepo(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "pool", "main", "h", "hello")
	src := filepath.Join(dir, "hello-1.0")
	for name, content := range map[string]string{
		"debian/control":       "Source: hello\nMaintainer: t <t@example.invalid>\n\nPackage: hello\nArchitecture: all\nDescription: fixture\n for repofmt.\n",
		"debian/changelog":     "hello (1.0) unstable; urgency=medium\n\n  * Fixture.\n\n -- t <t@example.invalid>  Thu, 01 Jan 2026 00:00:00 +0000\n",
		"debian/source/format": "3.0 (native)\n",
	} {
		p := filepath.Join(src, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(dir string, args ...string) []byte {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), args[0], args[1:]...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "APT_CONFIG=/dev/null", "SOURCE_DATE_EPOCH=1700000000")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	run(dir, "dpkg-source", "-b", "hello-1.0")
	if err := os.RemoveAll(src); err != nil {
		t.Fatal(err)
	}
	sources := run(root, "apt-ftparchive", "sources", "pool")

	var got []Entry
	if err := ParsePackages(bytes.NewReader(sources), func(e Entry) error { got = append(got, e); return nil }); err != nil {
		t.Fatalf("%v\n%s", err, sources)
	}
	var want []Entry
	for _, name := range []string{"hello_1.0.dsc", "hello_1.0.tar.xz"} {
		size, sum := sha256File(t, filepath.Join(dir, name))
		want = append(want, Entry{Package: "hello", Version: "1.0", Architecture: "all", Path: "pool/main/h/hello/" + name, Size: size, SHA256: sum})
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v\nSources:\n%s", got, want, sources)
	}
}
