// Package keyvalue reads the configuration format pkg-cacher and vzpkg
// share: one `key = value` per line, `#` starts a comment, and a line ending
// in `\` continues on the next. Keys are lower-cased; a key set twice takes
// the last value, as the original pkg-cacher's configuration did. Every
// error names the file and the line it is about.
package keyvalue

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Error is a configuration error at a place in a file (or on the command
// line).
type Error struct {
	File string // file name, or "command line"
	Line int    // 1-based; 0 when unknown
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Parse calls set with each entry of r (called name in errors), in order.
// An error from set is reported at the entry's line or, when it wraps an
// Item error, at the line of a continued entry that holds that item. A
// Warning from set is passed to warn with the file and line, and parsing
// goes on.
func Parse(name string, r io.Reader, set func(key, value string) error, warn func(msg string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	var (
		pending   strings.Builder
		starts    []int // offset in pending where each of the entry's lines starts
		startLine int
		line      int
	)
	flush := func() error {
		entry := pending.String()
		pending.Reset()
		defer func() { starts = starts[:0] }()
		text := strings.TrimSpace(entry)
		if text == "" {
			return nil
		}
		k, v, ok := strings.Cut(text, "=")
		if !ok {
			return &Error{File: name, Line: startLine, Msg: fmt.Sprintf("%q is not a `key = value` line", text)}
		}
		if err := set(Key(k), strings.TrimSpace(v)); err != nil {
			e := &Error{File: name, Line: startLine + lineOf(entry, starts, err), Msg: err.Error()}
			var w *Warning
			if errors.As(err, &w) && warn != nil {
				warn(e.Error())
				return nil
			}
			return e
		}
		return nil
	}
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		if pending.Len() == 0 {
			startLine = line
		}
		starts = append(starts, pending.Len())
		trimmed := strings.TrimRight(text, " \t\r")
		if strings.HasSuffix(trimmed, `\`) {
			pending.WriteString(strings.TrimSuffix(trimmed, `\`))
			pending.WriteByte(' ')
			continue
		}
		pending.WriteString(trimmed)
		if err := flush(); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		// The entry that could not be read starts at the line after the
		// last one read, or earlier if that one was continued.
		if pending.Len() == 0 {
			startLine = line + 1
		}
		msg := fmt.Sprintf("read: %v", err)
		if errors.Is(err, bufio.ErrTooLong) {
			msg = "line longer than 1 MiB (split it with a `\\` at the end of each part)"
		}
		return &Error{File: name, Line: startLine, Msg: msg}
	}
	return flush()
}

// Warning is what set returns for a setting it takes but that has no
// effect: Parse passes it on to warn and goes on.
type Warning struct{ Msg string }

func (w *Warning) Error() string { return w.Msg }

// itemError is an error about one item of a list value.
type itemError struct {
	item string
	err  error
}

func (e *itemError) Error() string { return e.err.Error() }
func (e *itemError) Unwrap() error { return e.err }

// Item marks err as being about item, one item of a list value: in an entry
// continued over several lines, the error names the line holding it.
func Item(item string, err error) error { return &itemError{item, err} }

// lineOf is the index of the line of a continued entry, whose lines start at
// starts, that holds the item err is about (0: the first line).
func lineOf(entry string, starts []int, err error) int {
	var ie *itemError
	if !errors.As(err, &ie) {
		return 0
	}
	at := strings.IndexByte(entry, '=')
	for {
		i := strings.Index(entry[at+1:], ie.item)
		if i < 0 {
			return 0
		}
		at += 1 + i
		end := at + len(ie.item)
		if separator(entry[at-1]) && (end == len(entry) || separator(entry[end])) {
			break // the item as a whole, not part of another
		}
	}
	n := 0
	for i, s := range starts {
		if s <= at {
			n = i
		}
	}
	return n
}

func separator(c byte) bool { return c == ' ' || c == '\t' || c == ',' || c == ';' || c == '=' }

// Key is the key k as Parse passes it on: trimmed, and its ASCII letters
// lower-cased (strings.ToLower would turn the Kelvin sign into a k).
func Key(k string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, strings.TrimSpace(k))
}
