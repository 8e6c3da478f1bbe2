package repofmt

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// maxLine bounds one line of a deb822 file; Debian's longest are a few KiB.
const maxLine = 1 << 20

// field is one field of a deb822 paragraph: the text on its first line and
// its continuation lines, trimmed.
type field struct {
	name, value string
	more        []string
	line        int
}

// paragraphReader reads the paragraphs of a deb822 file (a Packages,
// Sources or Release file), numbering lines for error messages. When the
// file is clearsigned it yields the signed body only.
type paragraphReader struct {
	sc   *bufio.Scanner
	line int
	// keep lists, in lower case, the fields whose values are kept; the
	// rest are checked for syntax and dropped, so long descriptions cost
	// no allocations.
	keep []string
	// signed is set while reading the body of a clearsigned message, which
	// ends at the signature.
	signed bool
	done   bool
	// fields holds the last paragraph's fields; next reuses it, so that
	// a Packages index of half a million paragraphs costs no allocation
	// a paragraph beyond its kept values.
	fields []field
}

func newParagraphReader(r io.Reader, keep ...string) *paragraphReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	return &paragraphReader{sc: sc, keep: keep}
}

const (
	pgpSigned    = "-----BEGIN PGP SIGNED MESSAGE-----"
	pgpSignature = "-----BEGIN PGP SIGNATURE-----"
)

// scan reads the next line of the document, undoing the dash escaping of a
// clearsigned body. It returns false at the end of the document. The line
// is valid until the next call.
func (p *paragraphReader) scan() ([]byte, bool, error) {
	if p.done {
		return nil, false, nil
	}
	if !p.sc.Scan() {
		p.done = true
		if err := p.sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				return nil, false, fmt.Errorf("line %d: longer than %d bytes", p.line+1, maxLine)
			}
			return nil, false, fmt.Errorf("line %d: %w", p.line+1, err)
		}
		if p.signed {
			return nil, false, fmt.Errorf("line %d: clearsigned message without a signature", p.line)
		}
		return nil, false, nil
	}
	p.line++
	l := bytes.TrimSuffix(p.sc.Bytes(), []byte("\r"))
	if p.line == 1 && string(bytes.TrimRight(l, " \t")) == pgpSigned {
		// Armor headers (Hash: ...) run to the first empty line.
		for {
			if !p.sc.Scan() {
				p.done = true
				return nil, false, fmt.Errorf("line %d: clearsigned message without a body", p.line)
			}
			p.line++
			if len(bytes.TrimRight(p.sc.Bytes(), " \t\r")) == 0 {
				break
			}
		}
		p.signed = true
		return p.scan()
	}
	if p.signed {
		if string(bytes.TrimRight(l, " \t")) == pgpSignature {
			p.signed, p.done = false, true
			return nil, false, nil
		}
		if bytes.HasPrefix(l, []byte("- ")) {
			l = l[2:]
		} else if bytes.HasPrefix(l, []byte("-")) {
			return nil, false, fmt.Errorf("line %d: unexpected armor line %q in a clearsigned body", p.line, l)
		}
	}
	return l, true, nil
}

// next returns the next paragraph's fields and the line it starts on, or
// io.EOF after the last one. The fields are valid until the next call.
func (p *paragraphReader) next() ([]field, int, error) {
	var (
		start int
		kept  bool // whether the last field's value is kept
	)
	p.fields = p.fields[:0]
	for {
		l, ok, err := p.scan()
		if err != nil {
			return nil, 0, err
		}
		if !ok || len(bytes.TrimSpace(l)) == 0 {
			if !ok && start == 0 {
				return nil, 0, io.EOF
			}
			if start == 0 {
				continue // blank lines between paragraphs
			}
			return p.fields, start, nil
		}
		if l[0] == ' ' || l[0] == '\t' {
			if start == 0 {
				return nil, 0, fmt.Errorf("line %d: continuation line outside a field", p.line)
			}
			if kept {
				f := &p.fields[len(p.fields)-1]
				f.more = append(f.more, string(bytes.TrimSpace(l)))
			}
			continue
		}
		name, value, found := bytes.Cut(l, []byte(":"))
		if !found || len(name) == 0 || bytes.ContainsAny(name, " \t") {
			return nil, 0, fmt.Errorf("line %d: want \"Field: value\", got %.40q", p.line, l)
		}
		if start == 0 {
			start = p.line
		}
		key := p.kept(name)
		kept = key != ""
		if !kept {
			continue
		}
		for _, f := range p.fields {
			if f.name == key {
				return nil, 0, fmt.Errorf("line %d: %s given again (first on line %d)", p.line, name, f.line)
			}
		}
		p.fields = append(p.fields, field{name: key, value: string(bytes.TrimSpace(value)), line: p.line})
	}
}

// kept returns the lower-case name of field name if its value is kept, or "".
func (p *paragraphReader) kept(name []byte) string {
	for _, k := range p.keep {
		if bytes.EqualFold(name, []byte(k)) {
			return k
		}
	}
	return ""
}

// CleanPath reports whether p is a non-empty relative slash-separated path
// without dot segments or empty segments.
func CleanPath(p string) bool {
	return p != "" && p != "." && !strings.HasPrefix(p, "/") && path.Clean(p) == p &&
		p != ".." && !strings.HasPrefix(p, "../") && !strings.ContainsRune(p, 0)
}

// isHex reports whether s is n lowercase hex digits.
func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
