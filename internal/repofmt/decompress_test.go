package repofmt

import (
	"bytes"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// TestDecompress reads data compressed by the gzip, xz, bzip2 and zstd
// tools back by name.
func TestDecompress(t *testing.T) {
	data := bytes.Repeat([]byte("Package: app\nVersion: 1.0\n\n"), 1000)
	for _, tc := range []struct {
		name string
		tool []string // compressor reading stdin, writing stdout; nil: as is
	}{
		{"Packages", nil},
		{"repomd.xml", nil},
		{"Packages.gz", []string{"gzip", "-c"}},
		{"Packages.xz", []string{"xz", "-c"}},
		{"Sources.bz2", []string{"bzip2", "-c"}},
		{"primary.xml.zst", []string{"zstd", "-c", "-q"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := data
			if tc.tool != nil {
				cmd := exec.CommandContext(t.Context(), tc.tool[0], tc.tool[1:]...)
				cmd.Stdin = bytes.NewReader(data)
				var err error
				if in, err = cmd.Output(); err != nil {
					t.Fatalf("%s: %v", tc.tool[0], err)
				}
			}
			r, err := Decompress(tc.name, bytes.NewReader(in))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("got %d bytes, want the %d bytes compressed", len(got), len(data))
			}
		})
	}
}

func TestDecompressRefuses(t *testing.T) {
	for _, tc := range []struct{ name, wantErr string }{
		{"Packages.lz4", "Packages.lz4: .lz4 compression is not supported"},
		{"primary.xml.zck", ".zck compression is not supported"},
		{"Packages.gz", "Packages.gz: gzip: invalid header"},
		{"Packages.xz", "Packages.xz: xz: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decompress(tc.name, strings.NewReader("not compressed at all"))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
