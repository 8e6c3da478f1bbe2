// Package templates is the shipped template tree, built into vzpkg so that a
// vzpkg binary with no tree installed beside it still has one.
package templates

import "embed"

// FS holds every file of this directory, also those under _ and . names
// (hooks, files, packagers). Its root also holds this package's Go source,
// which is not part of the tree. Embedded files carry no mode: a file is
// executable in the tree when it starts with "#!".
//
//go:embed all:*
var FS embed.FS
