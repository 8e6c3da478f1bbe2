package repofmt

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Checksum is what an index says of one file it lists.
type Checksum struct {
	Size int64
	// SHA256 and SHA512 are lowercase hex, or "" when the index does not
	// list the file under that algorithm.
	SHA256 string
	SHA512 string
}

// Release is an apt Release file, or the signed body of an InRelease file.
type Release struct {
	Suite    string
	Codename string
	// Date and ValidUntil are zero when the file does not give them.
	Date       time.Time
	ValidUntil time.Time
	// AcquireByHash says that the indexes are also published under
	// by-hash/SHA256/<hex> beside their names.
	AcquireByHash bool

	files map[string]Checksum
}

// Files returns the index files the Release lists under SHA256 or SHA512,
// keyed by their path relative to the dists/<suite>/ directory. Files listed
// only under MD5Sum or SHA1 are left out. The caller must not modify the map.
func (r *Release) Files() map[string]Checksum { return r.files }

// hashFields are the Release fields listing files, with their digests' hex
// lengths. MD5Sum and SHA1 are parsed for syntax only.
var hashFields = map[string]int{"md5sum": 32, "sha1": 40, "sha256": 64, "sha512": 128}

// ParseRelease parses a Release or InRelease file. The signature of an
// InRelease file is stripped, not checked. Errors name the offending line.
func ParseRelease(r io.Reader) (*Release, error) {
	pr := newParagraphReader(r, "suite", "codename", "date", "valid-until", "acquire-by-hash", "md5sum", "sha1", "sha256", "sha512")
	fields, _, err := pr.next()
	if err == io.EOF {
		return nil, fmt.Errorf("empty Release file")
	}
	if err != nil {
		return nil, err
	}
	if _, _, err := pr.next(); err != io.EOF {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("line %d: more than one paragraph in a Release file", pr.line)
	}
	rel := &Release{files: make(map[string]Checksum)}
	for _, f := range fields {
		if _, list := hashFields[f.name]; len(f.more) > 0 && !list {
			return nil, fmt.Errorf("line %d: %s: want a single line", f.line+1, f.name)
		}
		switch f.name {
		case "suite":
			rel.Suite = f.value
		case "codename":
			rel.Codename = f.value
		case "date":
			rel.Date, err = parseReleaseDate(f)
		case "valid-until":
			rel.ValidUntil, err = parseReleaseDate(f)
		case "acquire-by-hash":
			rel.AcquireByHash = slices.Contains([]string{"yes", "true", "1"}, strings.ToLower(f.value))
		default:
			err = rel.addFiles(f)
		}
		if err != nil {
			return nil, err
		}
	}
	return rel, nil
}

// addFiles records the "hash size path" lines of a hash list field.
func (rel *Release) addFiles(f field) error {
	if f.value != "" {
		return fmt.Errorf("line %d: %s: want the file list on the lines below", f.line, f.name)
	}
	for i, l := range f.more {
		line := f.line + 1 + i
		w := strings.Fields(l)
		if len(w) != 3 {
			return fmt.Errorf("line %d: want \"hash size path\", got %.60q", line, l)
		}
		sum, path := strings.ToLower(w[0]), w[2]
		if !isHex(sum, hashFields[f.name]) {
			return fmt.Errorf("line %d: %s: %.40q is not a %d-digit hex digest", line, path, w[0], hashFields[f.name])
		}
		size, err := strconv.ParseInt(w[1], 10, 64)
		if err != nil || size < 0 {
			return fmt.Errorf("line %d: %s: bad size %q", line, path, w[1])
		}
		if !CleanPath(path) {
			return fmt.Errorf("line %d: %.60q is not a clean relative path", line, path)
		}
		if f.name != "sha256" && f.name != "sha512" {
			continue
		}
		c, seen := rel.files[path]
		if seen && c.Size != size {
			return fmt.Errorf("line %d: %s: size %d, listed elsewhere with size %d", line, path, size, c.Size)
		}
		c.Size = size
		digest := &c.SHA256
		if f.name == "sha512" {
			digest = &c.SHA512
		}
		if *digest != "" {
			return fmt.Errorf("line %d: %s listed twice under %s", line, path, f.name)
		}
		*digest = sum
		rel.files[path] = c
	}
	return nil
}

// releaseDateLayouts are the date forms apt accepts: RFC 1123 with a zone
// name (Debian writes "UTC") or a numeric offset.
var releaseDateLayouts = []string{time.RFC1123, time.RFC1123Z, "Mon, 2 Jan 2006 15:04:05 MST", "Mon, 2 Jan 2006 15:04:05 -0700"}

func parseReleaseDate(f field) (time.Time, error) {
	for _, layout := range releaseDateLayouts {
		if t, err := time.Parse(layout, f.value); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("line %d: %s: %.60q is not an RFC 1123 date", f.line, f.name, f.value)
}
