package repofmt

import (
	"bufio"
	"compress/bzip2"
	"compress/gzip"
	"fmt"
	"io"
	"path"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Decompress returns a reader of the decompressed content of r, a file
// named name, picking the format by name's extension: .gz, .xz, .bz2 or
// .zst. Other names are read as they are, except .lz4, .lzma and .zck,
// which are refused. Closing the result does not close r.
func Decompress(name string, r io.Reader) (io.ReadCloser, error) {
	switch ext := path.Ext(name); ext {
	case ".gz":
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return z, nil
	case ".xz":
		z, err := xz.NewReader(bufio.NewReader(r))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return io.NopCloser(z), nil
	case ".bz2":
		return io.NopCloser(bzip2.NewReader(r)), nil
	case ".zst":
		z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return z.IOReadCloser(), nil
	case ".lz4", ".lzma", ".zck":
		return nil, fmt.Errorf("%s: %s compression is not supported", name, ext)
	}
	return io.NopCloser(r), nil
}
