package repofmt

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"vzpkg2/internal/repotest"
)

// TestParseRepomdBuiltRepo parses the repomd.xml and primary.xml.gz that
// createrepo_c makes and checks every checksum against the file on disk.
func TestParseRepomdBuiltRepo(t *testing.T) {
	rpms := []repotest.RPM{
		{Name: "app", Version: "1.0", Release: "1", Requires: []string{"libfoo"}, Size: 2048},
		{Name: "libfoo", Version: "0.9", Release: "3.el9", Size: 40000},
	}
	repo := repotest.BuildRPMRepo(t, t.TempDir(), rpms)
	f, err := os.Open(filepath.Join(repo.Root, "repodata", "repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	md, err := ParseRepomd(f)
	if err != nil {
		t.Fatal(err)
	}
	var primary string
	for _, d := range md.Data {
		size, sum := sha256File(t, filepath.Join(repo.Root, filepath.FromSlash(d.Href)))
		if d.Checksum != (Digest{"sha256", sum}) || d.Size != size {
			t.Errorf("data %s: checksum %v, size %d; want sha256 %s, size %d", d.Type, d.Checksum, d.Size, sum, size)
		}
		if d.OpenChecksum.Type != "sha256" || d.OpenSize <= 0 {
			t.Errorf("data %s: open-checksum %v, open-size %d; want a sha256 and a size", d.Type, d.OpenChecksum, d.OpenSize)
		}
		if d.Type == "primary" {
			primary = d.Href
		}
	}
	if primary == "" || md.Revision == "" {
		t.Fatalf("repomd.xml has revision %q and primary %q; want both: %+v", md.Revision, primary, md)
	}

	pf, err := os.Open(filepath.Join(repo.Root, filepath.FromSlash(primary)))
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	r, err := Decompress(primary, pf)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []RPMEntry
	if err := ParsePrimary(r, func(e RPMEntry) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	var want []RPMEntry
	for _, p := range rpms {
		href := repo.RPMs[p.Name]
		size, sum := sha256File(t, filepath.Join(repo.Root, filepath.FromSlash(href)))
		want = append(want, RPMEntry{Name: p.Name, Arch: "noarch", Epoch: "0", Version: p.Version, Release: p.Release,
			Href: href, Checksum: Digest{"sha256", sum}, Size: size})
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestParseRepomd(t *testing.T) {
	sha512 := strings.Repeat("0f", 64)
	for _, tc := range []struct {
		name, in string
		want     *Repomd
		wantErr  string
	}{
		{
			name: "all fields",
			in: `<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>1700000000</revision>
  <data type="primary">
    <checksum type="SHA512">` + strings.ToUpper(sha512) + `</checksum>
    <open-checksum type="sha256">` + sumA + `</open-checksum>
    <location href="repodata/x-primary.xml.zst"/>
    <timestamp>1700000000</timestamp>
    <size>123</size>
    <open-size>456</open-size>
  </data>
  <data type="group">
    <checksum type="sha">0123456789abcdef0123456789abcdef01234567</checksum>
    <location xml:base="http://mirror.example/os/" href="repodata/comps.xml"/>
  </data>
</repomd>`,
			want: &Repomd{Revision: "1700000000", Data: []RepomdData{
				{Type: "primary", Href: "repodata/x-primary.xml.zst", Checksum: Digest{"sha512", sha512}, Size: 123,
					OpenChecksum: Digest{"sha256", sumA}, OpenSize: 456},
				{Type: "group", Href: "repodata/comps.xml", Base: "http://mirror.example/os/",
					Checksum: Digest{"sha1", "0123456789abcdef0123456789abcdef01234567"}, Size: -1, OpenSize: -1},
			}},
		},
		{name: "not XML", in: "<repomd><data>", wantErr: "XML syntax error on line 1"},
		{name: "no checksum", in: "<repomd>\n<data type=\"primary\"><location href=\"a\"/></data></repomd>", wantErr: "line 2: data \"primary\": no checksum"},
		{name: "unknown checksum", in: `<repomd><data type="p"><checksum type="crc32">00</checksum><location href="a"/></data></repomd>`, wantErr: `unknown checksum type "crc32"`},
		{name: "short checksum", in: `<repomd><data type="p"><checksum type="sha256">00</checksum><location href="a"/></data></repomd>`, wantErr: `sha256 checksum "00" is not 64 hex digits`},
		{name: "escaping href", in: `<repomd><data type="p"><checksum type="sha256">` + sumA + `</checksum><location href="/etc/x"/></data></repomd>`, wantErr: `location "/etc/x" is not a clean relative path`},
		{name: "bad size", in: `<repomd><data type="p"><checksum type="sha256">` + sumA + `</checksum><location href="a"/><size>-4</size></data></repomd>`, wantErr: `size: "-4" is not a size`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md, err := ParseRepomd(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(md, tc.want) {
				t.Errorf("got %+v\nwant %+v", md, tc.want)
			}
			if !md.Data[1].Checksum.Weak() || md.Data[0].Checksum.Weak() {
				t.Errorf("Weak() = %v for sha1 and %v for sha512, want true and false", md.Data[1].Checksum.Weak(), md.Data[0].Checksum.Weak())
			}
		})
	}
}

func TestParsePrimary(t *testing.T) {
	pkg := func(body string) string {
		return `<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="1">
<package type="rpm">` + body + `</package></metadata>`
	}
	good := `<name>bash</name><arch>x86_64</arch><version epoch="0" ver="5.2.26" rel="3.fc40"/>
<checksum type="sha256" pkgid="YES">` + sumA + `</checksum><summary>The GNU Bourne Again shell</summary>
<size package="1874513" installed="8390574" archive="8418416"/>
<location xml:base="https://dl.example/fedora/" href="Packages/b/bash-5.2.26-3.fc40.x86_64.rpm"/>
<format><rpm:license>GPL-3.0-or-later</rpm:license><rpm:header-range start="4504" end="69185"/></format>`
	for _, tc := range []struct {
		name, in string
		want     []RPMEntry
		wantErr  string
	}{
		{
			name: "xml:base",
			in:   pkg(good),
			want: []RPMEntry{{Name: "bash", Arch: "x86_64", Epoch: "0", Version: "5.2.26", Release: "3.fc40",
				Href: "Packages/b/bash-5.2.26-3.fc40.x86_64.rpm", Base: "https://dl.example/fedora/",
				Checksum: Digest{"sha256", sumA}, Size: 1874513}},
		},
		{name: "empty", in: `<metadata packages="0"></metadata>`},
		{name: "truncated", in: pkg(good)[:200], wantErr: "XML syntax error on line"},
		{name: "no location", in: pkg("<name>a</name>\n<checksum type=\"sha256\">" + sumA + "</checksum>"), wantErr: "line 2: package \"a\": location \"\" is not a clean relative path"},
		{name: "parent location", in: pkg(`<name>a</name><location href="../a.rpm"/>`), wantErr: `package "a": location "../a.rpm" is not a clean relative path`},
		{name: "no checksum", in: pkg(`<name>a</name><location href="a.rpm"/>`), wantErr: `package "a": no checksum`},
		{name: "bad size", in: pkg(`<name>a</name><location href="a.rpm"/><checksum type="md5">d41d8cd98f00b204e9800998ecf8427e</checksum><size package="x"/>`), wantErr: `package "a": size: "x" is not a size`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []RPMEntry
			err := ParsePrimary(strings.NewReader(tc.in), func(e RPMEntry) error { got = append(got, e); return nil })
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

func TestParsePrimaryStopsOnCallbackError(t *testing.T) {
	p := `<package><name>a</name><location href="a.rpm"/><checksum type="sha256">` + sumA + `</checksum></package>`
	stop := errors.New("stop")
	calls := 0
	err := ParsePrimary(strings.NewReader("<metadata>"+p+p+"</metadata>"), func(RPMEntry) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("got error %v after %d calls, want %v after 1", err, calls, stop)
	}
}
