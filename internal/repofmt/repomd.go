package repofmt

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Digest is a checksum given in yum/dnf metadata.
type Digest struct {
	// Type is "md5", "sha1", "sha224", "sha256", "sha384" or "sha512"
	// (yum's "sha" is read as "sha1").
	Type string
	// Value is lowercase hex of the length Type implies.
	Value string
}

// Weak reports whether d is an MD5 or SHA-1 digest, which a cache should
// not rely on alone to tell a file from a forgery.
func (d Digest) Weak() bool { return d.Type == "md5" || d.Type == "sha1" }

// digestLen is the hex length of each digest type accepted.
var digestLen = map[string]int{"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}

// xmlDigest is a <checksum type="...">hex</checksum> element.
type xmlDigest struct {
	Type  string `xml:"type,attr"`
	Value string `xml:",chardata"`
}

// digest checks and normalises d.
func (d xmlDigest) digest() (Digest, error) {
	typ := strings.ToLower(strings.TrimSpace(d.Type))
	if typ == "sha" {
		typ = "sha1"
	}
	n, ok := digestLen[typ]
	if !ok {
		return Digest{}, fmt.Errorf("unknown checksum type %.20q", d.Type)
	}
	v := strings.ToLower(strings.TrimSpace(d.Value))
	if !isHex(v, n) {
		return Digest{}, fmt.Errorf("%s checksum %.140q is not %d hex digits", typ, v, n)
	}
	return Digest{Type: typ, Value: v}, nil
}

// xmlLocation is a <location href="..." xml:base="..."/> element.
type xmlLocation struct {
	Href string     `xml:"href,attr"`
	Attr []xml.Attr `xml:",any,attr"`
}

// xmlNamespace is the namespace of the xml: prefix.
const xmlNamespace = "http://www.w3.org/XML/1998/namespace"

// base returns the location's xml:base attribute.
func (l xmlLocation) base() string {
	for _, a := range l.Attr {
		if a.Name.Local == "base" && (a.Name.Space == xmlNamespace || a.Name.Space == "xml") {
			return a.Value
		}
	}
	return ""
}

// Repomd is a yum/dnf repository's repodata/repomd.xml.
type Repomd struct {
	Revision string
	Data     []RepomdData
}

// RepomdData is one metadata file a repomd.xml lists.
type RepomdData struct {
	// Type is the kind of file: "primary", "filelists", "other",
	// "primary_db", "group", "updateinfo" ...
	Type string
	// Href is the file's location relative to the repository's base (the
	// parent of repodata/), e.g. "repodata/<sha256>-primary.xml.gz".
	Href string
	// Base is the location's xml:base, a URL the Href is relative to
	// instead, or "".
	Base     string
	Checksum Digest
	// Size is the file's size, or -1 when repomd.xml does not give it.
	Size int64
	// OpenChecksum and OpenSize describe the decompressed file; they are
	// zero and -1 when not given.
	OpenChecksum Digest
	OpenSize     int64
}

// ParseRepomd parses a repomd.xml file. Errors name the data element's line.
func ParseRepomd(r io.Reader) (*Repomd, error) {
	dec := xml.NewDecoder(r)
	md := &Repomd{}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return md, nil
		}
		if err != nil {
			return nil, xmlError(dec, err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch se.Name.Local {
		case "revision":
			line, _ := dec.InputPos()
			if err := dec.DecodeElement(&md.Revision, &se); err != nil {
				return nil, fmt.Errorf("line %d: revision: %w", line, err)
			}
			md.Revision = strings.TrimSpace(md.Revision)
		case "data":
			d, err := decodeData(dec, &se)
			if err != nil {
				return nil, err
			}
			md.Data = append(md.Data, d)
		}
	}
}

// decodeData decodes the <data> element se.
func decodeData(dec *xml.Decoder, se *xml.StartElement) (RepomdData, error) {
	line, _ := dec.InputPos()
	var x struct {
		Type         string      `xml:"type,attr"`
		Checksum     *xmlDigest  `xml:"checksum"`
		OpenChecksum *xmlDigest  `xml:"open-checksum"`
		Location     xmlLocation `xml:"location"`
		Size         *string     `xml:"size"`
		OpenSize     *string     `xml:"open-size"`
	}
	if err := dec.DecodeElement(&x, se); err != nil {
		return RepomdData{}, xmlError(dec, err)
	}
	d := RepomdData{Type: strings.TrimSpace(x.Type), Href: x.Location.Href, Base: x.Location.base()}
	fail := func(format string, args ...any) (RepomdData, error) {
		return RepomdData{}, fmt.Errorf("line %d: data %.30q: %s", line, d.Type, fmt.Sprintf(format, args...))
	}
	if !CleanPath(d.Href) {
		return fail("location %.60q is not a clean relative path", d.Href)
	}
	if x.Checksum == nil {
		return fail("no checksum")
	}
	var err error
	if d.Checksum, err = x.Checksum.digest(); err != nil {
		return fail("%v", err)
	}
	if x.OpenChecksum != nil {
		if d.OpenChecksum, err = x.OpenChecksum.digest(); err != nil {
			return fail("open-checksum: %v", err)
		}
	}
	if d.Size, err = parseSize(x.Size); err != nil {
		return fail("size: %v", err)
	}
	if d.OpenSize, err = parseSize(x.OpenSize); err != nil {
		return fail("open-size: %v", err)
	}
	return d, nil
}

// parseSize parses an optional size, -1 when absent.
func parseSize(s *string) (int64, error) {
	if s == nil {
		return -1, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(*s), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%.30q is not a size", *s)
	}
	return n, nil
}

// xmlError adds the decoder's position to err unless it already has one.
func xmlError(dec *xml.Decoder, err error) error {
	var syn *xml.SyntaxError
	if errors.As(err, &syn) {
		return err // "XML syntax error on line N: ..."
	}
	line, _ := dec.InputPos()
	return fmt.Errorf("line %d: %w", line, err)
}

// RPMEntry is one package a primary.xml lists.
type RPMEntry struct {
	Name    string
	Arch    string
	Epoch   string
	Version string
	Release string
	// Href is the package's location relative to the repository's base,
	// or to Base when that is not "".
	Href string
	Base string
	// Checksum is the package's pkgid: the checksum of the whole .rpm file.
	Checksum Digest
	// Size is the .rpm file's size, or -1 when primary.xml does not give it.
	Size int64
}

// ParsePrimary calls fn for each package of a primary.xml (already
// decompressed), in order, decoding one package element at a time. It
// stops at the first error fn returns and returns it; other errors name the
// package's line.
func ParsePrimary(r io.Reader, fn func(RPMEntry) error) error {
	dec := xml.NewDecoder(r)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return xmlError(dec, err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Local != "package" {
			continue
		}
		e, err := decodePackage(dec, &se)
		if err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// decodePackage decodes the <package> element se.
func decodePackage(dec *xml.Decoder, se *xml.StartElement) (RPMEntry, error) {
	line, _ := dec.InputPos()
	var x struct {
		Name    string `xml:"name"`
		Arch    string `xml:"arch"`
		Version struct {
			Epoch string `xml:"epoch,attr"`
			Ver   string `xml:"ver,attr"`
			Rel   string `xml:"rel,attr"`
		} `xml:"version"`
		Checksum *xmlDigest  `xml:"checksum"`
		Location xmlLocation `xml:"location"`
		Size     struct {
			Package *string `xml:"package,attr"`
		} `xml:"size"`
	}
	if err := dec.DecodeElement(&x, se); err != nil {
		return RPMEntry{}, xmlError(dec, err)
	}
	e := RPMEntry{
		Name:    strings.TrimSpace(x.Name),
		Arch:    strings.TrimSpace(x.Arch),
		Epoch:   x.Version.Epoch,
		Version: x.Version.Ver,
		Release: x.Version.Rel,
		Href:    x.Location.Href,
		Base:    x.Location.base(),
	}
	fail := func(format string, args ...any) (RPMEntry, error) {
		return RPMEntry{}, fmt.Errorf("line %d: package %.60q: %s", line, e.Name, fmt.Sprintf(format, args...))
	}
	if !CleanPath(e.Href) {
		return fail("location %.60q is not a clean relative path", e.Href)
	}
	if x.Checksum == nil {
		return fail("no checksum")
	}
	var err error
	if e.Checksum, err = x.Checksum.digest(); err != nil {
		return fail("%v", err)
	}
	if e.Size, err = parseSize(x.Size.Package); err != nil {
		return fail("size: %v", err)
	}
	return e, nil
}
