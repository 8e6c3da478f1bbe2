package apt

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	"vzpkg2/internal/rootfs"
	"vzpkg2/internal/tmpl"
)

const (
	// excludesFile holds a template's dpkg path filters in its root. It stays
	// there, so dpkg leaves the same paths out of what a container installs
	// later.
	excludesFile = "etc/dpkg/dpkg.cfg.d/excludes"
	// excludesHeader starts an excludes file written by vzpkg.
	excludesHeader = "# Written by vzpkg from the template's path_exclude and path_include: dpkg\n"
)

// pathFilter is one dpkg --path-exclude or --path-include pattern.
type pathFilter struct {
	include bool
	pattern string         // an absolute glob, as dpkg takes it
	re      *regexp.Regexp // pattern as fnmatch(3) without flags reads it
}

// pathFilters returns the definition's path filters in the order dpkg reads
// the excludes file: the excludes, then the includes.
func pathFilters(def *tmpl.Definition) ([]pathFilter, error) {
	var fs []pathFilter
	for i, list := range [][]string{def.PathExclude, def.PathInclude} {
		for _, p := range list {
			re, err := regexp.Compile(globRegexp(p))
			if err != nil {
				return nil, fmt.Errorf("path filter %q: %w", p, err)
			}
			fs = append(fs, pathFilter{include: i == 1, pattern: p, re: re})
		}
	}
	return fs, nil
}

// excludesConfig renders filters as a dpkg configuration file.
func excludesConfig(filters []pathFilter) string {
	var b strings.Builder
	b.WriteString(excludesHeader)
	b.WriteString("# leaves out of every package the paths matching a path-exclude line, unless a\n")
	b.WriteString("# later path-include line matches them too. Delete this file (and reinstall a\n")
	b.WriteString("# package) to get its documentation, manual pages and translations back.\n")
	for _, f := range filters {
		opt := "path-exclude"
		if f.include {
			opt = "path-include"
		}
		fmt.Fprintf(&b, "%s=%s\n", opt, f.pattern)
	}
	return b.String()
}

// writeExcludes writes filters to root's excludes file; with no filters it
// removes an excludes file vzpkg wrote before (a file of another origin is
// left alone).
func writeExcludes(root string, filters []pathFilter) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	if len(filters) == 0 {
		data, err := r.ReadFile(excludesFile)
		if err == nil && strings.HasPrefix(string(data), excludesHeader) {
			return r.Remove(excludesFile)
		}
		return nil
	}
	if err := r.MkdirAll(path.Dir(excludesFile), 0o755); err != nil {
		return err
	}
	return rootfs.WriteFile(r, excludesFile, []byte(excludesConfig(filters)), 0o644)
}

// skipped reports whether dpkg, reading filters, leaves out the entry name
// ("/usr/share/doc/x") of a package: the last matching filter decides. Like
// dpkg, it keeps an excluded directory or symbolic link when the fixed part
// of an include pattern (up to its first wildcard) is a prefix of its name,
// so that the included files have a place.
func skipped(filters []pathFilter, name string, dirOrLink bool) bool {
	skip := false
	for _, f := range filters {
		if f.re.MatchString(name) {
			skip = !f.include
		}
	}
	if !skip || !dirOrLink {
		return skip
	}
	for _, f := range filters {
		if !f.include {
			continue
		}
		fixed := f.pattern
		if i := strings.IndexAny(fixed, `*?[\`); i >= 0 {
			fixed = fixed[:i]
		}
		if strings.HasPrefix(name, strings.TrimRight(fixed, "/")) {
			return false
		}
	}
	return true
}

// prune removes from root what filters leave out, as if dpkg had read them
// for every package already there: a bootstrap unpacks the essential
// packages before dpkg runs, and an update may bring new filters. Excluded
// directories go when nothing in them is left. It stays on root's file
// system.
func prune(root string, filters []pathFilter) error {
	if len(filters) == 0 {
		return nil
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	fi, err := r.Stat(".")
	if err != nil {
		return err
	}
	dev := fi.Sys().(*syscall.Stat_t).Dev
	var dirs []string // excluded directories, parents first
	// The walk reads the root through r and does not follow links; what it
	// removes is removed through r.
	err = fs.WalkDir(r.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "." {
			return err
		}
		name := "/" + p
		if d.IsDir() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			if info.Sys().(*syscall.Stat_t).Dev != dev {
				return fs.SkipDir
			}
			if skipped(filters, name, true) {
				dirs = append(dirs, p)
			}
			return nil
		}
		if skipped(filters, name, d.Type()&fs.ModeSymlink != 0) {
			return r.Remove(p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove the paths path_exclude leaves out: %w", err)
	}
	for _, d := range slices.Backward(dirs) {
		if err := r.Remove(d); err != nil && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("remove the paths path_exclude leaves out: %w", err)
		}
	}
	return nil
}

// globRegexp translates a glob as fnmatch(3) reads it without flags, which
// is how dpkg matches its path filters: '*' and '?' match '/' and leading
// dots too, '[...]' is a bracket expression ('!' or '^' negates it), and
// '\' quotes the next character.
func globRegexp(glob string) string {
	var b strings.Builder
	b.WriteString(`(?s)\A`)
	for i := 0; i < len(glob); {
		r, size := utf8.DecodeRuneInString(glob[i:])
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		case '\\':
			if i+size < len(glob) {
				i += size
				r, size = utf8.DecodeRuneInString(glob[i:])
			}
			b.WriteString(regexp.QuoteMeta(string(r)))
		case '[':
			if class, n := bracket(glob[i:]); n > 0 {
				b.WriteString(class)
				size = n
			} else {
				b.WriteString(`\[`)
			}
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
		i += size
	}
	b.WriteString(`\z`)
	return b.String()
}

// bracket translates the bracket expression at the start of s into a
// regular expression class and returns it with the length it takes in s; n
// is 0 when s has no closing ']' (the '[' is then an ordinary character).
func bracket(s string) (class string, n int) {
	var b strings.Builder
	b.WriteByte('[')
	i := 1
	if i < len(s) && (s[i] == '!' || s[i] == '^') {
		b.WriteByte('^')
		i++
	}
	for start := i; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == ']' && i > start:
			b.WriteByte(']')
			return b.String(), i + 1
		case r == '[' && strings.HasPrefix(s[i:], "[:") && strings.Contains(s[i+2:], ":]"):
			end := i + 2 + strings.Index(s[i+2:], ":]") + 2
			b.WriteString(s[i:end]) // [:alpha:] reads the same in both
			size = end - i
		case r == '\\' && i+size < len(s):
			i += size
			r, size = utf8.DecodeRuneInString(s[i:])
			b.WriteString(classChar(r))
		case r == '-':
			b.WriteByte('-')
		default:
			b.WriteString(classChar(r))
		}
		i += size
	}
	return "", 0
}

// classChar writes r for use inside a regular expression class: ASCII
// punctuation escaped, anything else as it is.
func classChar(r rune) string {
	if r < utf8.RuneSelf && (unicode.IsPunct(r) || unicode.IsSymbol(r)) {
		return `\` + string(r)
	}
	return string(r)
}
