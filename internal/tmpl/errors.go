package tmpl

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	suggestpkg "vzpkg2/internal/suggest"
)

// Error is one problem in the template tree, at the place it was found.
type Error struct {
	Src Source
	Msg string // says what is wrong and, when it can, how to fix it
}

func (e *Error) Error() string { return e.Src.String() + ": " + e.Msg }

// Errors is every problem found in a tree, sorted by file and line.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// normalize sorts es and drops repeats (the same problem reached through
// several templates).
func (es Errors) normalize() Errors {
	slices.SortFunc(es, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Src.File, b.Src.File), cmp.Compare(a.Src.Line, b.Src.Line), cmp.Compare(a.Msg, b.Msg))
	})
	return slices.CompactFunc(es, func(a, b *Error) bool { return *a == *b })
}

// errorList collects errors; the zero value is ready to use.
type errorList struct{ errs Errors }

func (l *errorList) add(src Source, format string, args ...any) {
	l.errs = append(l.errs, &Error{Src: src, Msg: fmt.Sprintf(format, args...)})
}

// suggest returns ` (did you mean "x"?)` for the known word closest to w, or
// ` (known: a, b, c)` when none is close.
func suggest(w string, known []string) string {
	if best := suggestpkg.Nearest(w, known); best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	if len(known) == 0 {
		return ""
	}
	return " (known: " + strings.Join(known, ", ") + ")"
}
