// Package templates is the shipped template tree, built into vzpkg so that a
// vzpkg binary with no tree installed beside it still has one.
package templates

import (
	"embed"
	"path"
	"strings"
)

// FS holds every file of this directory, also those under _ and . names
// (hooks, files, packagers). Its root also holds this package's Go source,
// which is not part of the tree. Embedded files carry no mode: a file is
// executable in the tree when it starts with "#!".
//
//go:embed all:*
var FS embed.FS

// IsSource reports whether name, a slash-separated path relative to the
// tree, is this package's Go source rather than a file of the tree.
func IsSource(name string) bool {
	return path.Dir(name) == "." && strings.HasSuffix(name, ".go")
}
