package expect

import (
	"bufio"
	"compress/bzip2"
	"compress/gzip"
	"encoding/xml"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// file is what an index says of one file: its path relative to the index's
// anchor, size and SHA-256.
type file struct {
	path string
	size int64
	sha  string
}

// releaseFiles returns the SHA256 list of a Release or InRelease file (the
// signed body of a clearsigned InRelease; the signature is not checked
// here): index files relative to dists/SUITE/.
func releaseFiles(r io.Reader) ([]file, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var files []file
	inSHA256 := false
	for line := 1; sc.Scan(); line++ {
		l := sc.Text()
		if strings.HasPrefix(l, "-----BEGIN PGP SIGNATURE") {
			break
		}
		if !strings.HasPrefix(l, " ") {
			inSHA256 = strings.TrimSpace(l) == "SHA256:"
			continue
		}
		if !inSHA256 {
			continue
		}
		f := strings.Fields(l)
		if len(f) != 3 {
			return nil, fmt.Errorf("line %d: want \"sha256 size path\", got %q", line, l)
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || size < 0 {
			return nil, fmt.Errorf("line %d: bad size %q", line, f[1])
		}
		if clean(f[2]) {
			files = append(files, file{path: f[2], size: size, sha: f[0]})
		}
	}
	return files, sc.Err()
}

// packagesFiles calls fn for each package of a Packages index: Filename,
// Size and SHA256, the file name relative to the archive root.
func packagesFiles(r io.Reader, fn func(file)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var cur file
	flush := func() {
		if cur.path != "" && cur.sha != "" && clean(cur.path) {
			fn(cur)
		}
		cur = file{size: -1}
	}
	cur.size = -1
	for sc.Scan() {
		l := sc.Text()
		if l == "" {
			flush()
			continue
		}
		name, val, ok := strings.Cut(l, ":")
		if !ok || strings.HasPrefix(l, " ") {
			continue
		}
		val = strings.TrimSpace(val)
		switch name {
		case "Filename":
			cur.path = val
		case "Size":
			if n, err := strconv.ParseInt(val, 10, 64); err == nil && n >= 0 {
				cur.size = n
			}
		case "SHA256":
			cur.sha = val
		}
	}
	flush()
	return sc.Err()
}

// repomdFiles returns the repodata files a repomd.xml lists with a SHA-256,
// relative to the repository's base (the parent of repodata/), and which of
// them is the primary index.
func repomdFiles(r io.Reader) (files []file, primary string, err error) {
	var md struct {
		Data []struct {
			Type     string `xml:"type,attr"`
			Checksum struct {
				Type  string `xml:"type,attr"`
				Value string `xml:",chardata"`
			} `xml:"checksum"`
			Location struct {
				Href string `xml:"href,attr"`
			} `xml:"location"`
			Size int64 `xml:"size"`
		} `xml:"data"`
	}
	if err := xml.NewDecoder(r).Decode(&md); err != nil {
		return nil, "", fmt.Errorf("repomd.xml: %w", err)
	}
	for _, d := range md.Data {
		href := d.Location.Href
		if d.Checksum.Type != "sha256" || !clean(href) {
			continue
		}
		size := d.Size
		if size <= 0 {
			size = -1
		}
		files = append(files, file{path: href, size: size, sha: strings.TrimSpace(d.Checksum.Value)})
		if d.Type == "primary" {
			primary = href
		}
	}
	return files, primary, nil
}

// primaryFiles calls fn for each package of a primary.xml with a SHA-256
// checksum, the location relative to the repository's base.
func primaryFiles(r io.Reader, fn func(file)) error {
	dec := xml.NewDecoder(r)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("primary.xml: %w", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Local != "package" {
			continue
		}
		var p struct {
			Checksum struct {
				Type  string `xml:"type,attr"`
				Value string `xml:",chardata"`
			} `xml:"checksum"`
			Location struct {
				Href string `xml:"href,attr"`
				Base string `xml:"base,attr"`
			} `xml:"location"`
			Size struct {
				Package int64 `xml:"package,attr"`
			} `xml:"size"`
		}
		if err := dec.DecodeElement(&p, &se); err != nil {
			return fmt.Errorf("primary.xml: %w", err)
		}
		// A location with its own xml:base lives elsewhere: nothing to anchor it to.
		if p.Checksum.Type == "sha256" && p.Location.Base == "" && clean(p.Location.Href) {
			size := p.Size.Package
			if size <= 0 {
				size = -1
			}
			fn(file{path: p.Location.Href, size: size, sha: strings.TrimSpace(p.Checksum.Value)})
		}
	}
}

// clean reports whether p is a relative path without dot segments.
func clean(p string) bool {
	return p != "" && !strings.HasPrefix(p, "/") && path.Clean(p) == p && !strings.HasPrefix(p, "../") && p != ".."
}

// decompress reads r as the compression name's extension says.
func decompress(name string, r io.Reader) (io.ReadCloser, error) {
	switch path.Ext(name) {
	case ".gz":
		return gzip.NewReader(r)
	case ".xz":
		z, err := xz.NewReader(bufio.NewReader(r))
		return io.NopCloser(z), err
	case ".bz2":
		return io.NopCloser(bzip2.NewReader(r)), nil
	case ".zst":
		z, err := zstd.NewReader(r)
		if err != nil {
			return nil, err
		}
		return z.IOReadCloser(), nil
	}
	return io.NopCloser(r), nil
}
