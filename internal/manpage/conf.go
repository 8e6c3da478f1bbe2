package manpage

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// Markers around the part of a section-5 page generated from an example
// configuration file.
const (
	keysBegin = ".SH KEYS\n"
	keysEnd   = ".\\\" End of the section generated from the example configuration.\n"
)

var (
	exampleLine = regexp.MustCompile(`^[a-z][a-z0-9_]* = `)
	heading     = regexp.MustCompile(`^--- (.*) ---$`)
	code        = regexp.MustCompile("`([^`]+)`")
)

// ConfKeys renders an example configuration file (`key = value` lines, each
// group of them after the `#` comment that explains it) as the body of a
// page's KEYS section: one entry per group, keys with the example's value,
// the comment as the text. The comment paragraphs before the first key (the
// file's own header) are left out; a comment `--- TITLE ---` starts a
// subsection, other comments without keys are paragraphs.
func ConfKeys(example []byte) string {
	var b strings.Builder
	seenKey := false
	for _, para := range strings.Split(strings.TrimSpace(string(example)), "\n\n") {
		var comment, keys []string
		lines := strings.Split(para, "\n")
		for i := 0; i < len(lines); i++ {
			line := strings.TrimSpace(lines[i])
			if text, ok := strings.CutPrefix(line, "#"); ok {
				comment = append(comment, strings.TrimSpace(text))
				continue
			}
			for strings.HasSuffix(line, "\\") && i+1 < len(lines) {
				i++
				line = strings.TrimSpace(strings.TrimSuffix(line, "\\")) + " " + strings.TrimSpace(lines[i])
			}
			keys = append(keys, line)
		}
		if len(keys) == 0 {
			if !seenKey {
				continue
			}
			if m := heading.FindStringSubmatch(strings.Join(comment, " ")); m != nil {
				fmt.Fprintf(&b, ".SS %s\n", roffText(m[1]))
				continue
			}
			b.WriteString(".PP\n")
			writeComment(&b, comment)
			continue
		}
		seenKey = true
		for i, kv := range keys {
			macro := ".TP\n"
			if i > 0 {
				macro = ".TQ\n"
			}
			key, val, _ := strings.Cut(kv, "=")
			key, val = strings.TrimSpace(key), strings.TrimSpace(val)
			if val == "" {
				fmt.Fprintf(&b, "%s\\fB%s =\\fP (empty)\n", macro, roffText(key))
			} else {
				fmt.Fprintf(&b, "%s\\fB%s =\\fP %s\n", macro, roffText(key), roffText(val))
			}
		}
		writeComment(&b, comment)
	}
	return b.String()
}

// writeComment writes the lines of a comment as filled text; lines that are
// themselves settings (an example, commented out) as an indented unfilled
// block.
func writeComment(b *strings.Builder, comment []string) {
	inExample := false
	for _, line := range comment {
		isExample := exampleLine.MatchString(line)
		switch {
		case isExample && !inExample:
			b.WriteString(".RS\n.nf\n")
		case !isExample && inExample:
			b.WriteString(".fi\n.RE\n")
		}
		inExample = isExample
		if isExample {
			b.WriteString(roffText(line) + "\n")
		} else {
			b.WriteString(code.ReplaceAllString(roffText(line), `\fB$1\fP`) + "\n")
		}
	}
	if inExample {
		b.WriteString(".fi\n.RE\n")
	}
}

// roffText escapes s to be a line of text in a page.
func roffText(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return escapeNonASCII(s)
}

// CheckConfPage fails t when the KEYS section of page differs from the one
// ConfKeys makes of the example configuration file; with update it rewrites
// the section instead. The section runs from ".SH KEYS" to the end marker
// comment, which the page must have.
func CheckConfPage(t *testing.T, page, example string, update bool, hint string) {
	t.Helper()
	data, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	head, rest, ok1 := bytes.Cut(data, []byte(keysBegin))
	_, tail, ok2 := bytes.Cut(rest, []byte(keysEnd))
	if !ok1 || !ok2 {
		t.Fatalf("%s has no %q line or no end marker %q", page, strings.TrimSpace(keysBegin), strings.TrimSpace(keysEnd))
	}
	want := string(head) + keysBegin + ConfKeys(conf) + keysEnd + string(tail)
	if update {
		if err := os.WriteFile(page, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if string(data) != want {
		t.Errorf("the KEYS section of %s does not match %s; run %s", page, example, hint)
	}
}
