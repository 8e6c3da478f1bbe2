package repofmt

import (
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
)

// Entry is one file a Packages or Sources index lists: a binary package, or
// one file of a source package (.dsc, .orig.tar.*, .debian.tar.*).
type Entry struct {
	Package      string
	Version      string
	Architecture string
	// Path is relative to the archive root (the directory holding dists/
	// and pool/): a Packages stanza's Filename, or a Sources stanza's
	// Directory joined with a file name.
	Path string
	Size int64
	// SHA256 is lowercase hex, or "" for an old index listing only MD5sum.
	SHA256 string
}

// ParsePackages calls fn for each file listed by a Packages or Sources
// index (already decompressed), in order, reading one stanza at a time.
// Stanzas with neither a Filename nor a Checksums-Sha256 list (dpkg's status
// file, old Sources stanzas with an MD5 Files list only) are skipped. It stops
// at the first error fn returns and returns it; other errors name the line.
func ParsePackages(r io.Reader, fn func(Entry) error) error {
	pr := newParagraphReader(r, "package", "version", "architecture", "filename", "size", "sha256", "directory", "checksums-sha256")
	for {
		fields, start, err := pr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var (
			e                    Entry
			size, dir, checksums *field
		)
		for i := range fields {
			f := &fields[i]
			if len(f.more) > 0 && f.name != "checksums-sha256" {
				return fmt.Errorf("line %d: %s: want a single line", f.line+1, f.name)
			}
			switch f.name {
			case "package":
				e.Package = f.value
			case "version":
				e.Version = f.value
			case "architecture":
				e.Architecture = f.value
			case "filename":
				e.Path = f.value
			case "sha256":
				e.SHA256 = f.value
			case "size":
				size = f
			case "directory":
				dir = f
			case "checksums-sha256":
				checksums = f
			}
		}
		if e.Package == "" && (e.Path != "" || checksums != nil) {
			return fmt.Errorf("line %d: stanza without a Package field", start)
		}
		switch {
		case e.Path != "":
			err = binaryEntry(e, size, start, fn)
		case checksums != nil:
			err = sourceEntries(e, dir, checksums, fn)
		}
		if err != nil {
			return err
		}
	}
}

// binaryEntry checks and yields the entry of a Packages stanza starting on
// line start.
func binaryEntry(e Entry, size *field, start int, fn func(Entry) error) error {
	if !CleanPath(e.Path) {
		return fmt.Errorf("line %d: package %s: Filename %.60q is not a clean relative path", start, e.Package, e.Path)
	}
	if size == nil {
		return fmt.Errorf("line %d: package %s: Filename without Size", start, e.Package)
	}
	n, err := strconv.ParseInt(size.value, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("line %d: package %s: bad Size %.30q", size.line, e.Package, size.value)
	}
	e.Size = n
	if e.SHA256 != "" && !isHex(e.SHA256, 64) {
		e.SHA256 = strings.ToLower(e.SHA256)
		if !isHex(e.SHA256, 64) {
			return fmt.Errorf("line %d: package %s: SHA256 %.70q is not 64 hex digits", start, e.Package, e.SHA256)
		}
	}
	return fn(e)
}

// sourceEntries yields one entry per file of a Sources stanza's
// Checksums-Sha256 list, each under the stanza's Directory.
func sourceEntries(e Entry, dir, checksums *field, fn func(Entry) error) error {
	if dir == nil || !CleanPath(dir.value) {
		return fmt.Errorf("line %d: source %s: Checksums-Sha256 without a clean relative Directory", checksums.line, e.Package)
	}
	if checksums.value != "" {
		return fmt.Errorf("line %d: source %s: want the Checksums-Sha256 list on the lines below", checksums.line, e.Package)
	}
	for i, l := range checksums.more {
		line := checksums.line + 1 + i
		w := strings.Fields(l)
		if len(w) != 3 {
			return fmt.Errorf("line %d: source %s: want \"sha256 size name\", got %.60q", line, e.Package, l)
		}
		sum, name := w[0], w[2]
		if !isHex(sum, 64) {
			sum = strings.ToLower(sum)
		}
		if !isHex(sum, 64) {
			return fmt.Errorf("line %d: source %s: %.70q is not 64 hex digits", line, e.Package, w[0])
		}
		size, err := strconv.ParseInt(w[1], 10, 64)
		if err != nil || size < 0 {
			return fmt.Errorf("line %d: source %s: bad size %.30q", line, e.Package, w[1])
		}
		if strings.Contains(name, "/") || !CleanPath(name) {
			return fmt.Errorf("line %d: source %s: %.60q is not a plain file name", line, e.Package, name)
		}
		f := e
		f.Path, f.Size, f.SHA256 = path.Join(dir.value, name), size, sum
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}
