// Package packager is the contract between a template build and one family of
// package managers (apt, dnf, external scripts): bootstrap an empty root,
// bring an installed root up to date, list what is installed, and point the
// root's repository configuration at pkg-cacher.
package packager

import (
	"context"
	"io"
	"net/url"

	"vzpkg2/internal/tmpl"
)

// Packager is one package-manager family.
type Packager interface {
	// Bootstrap turns the empty directory root into a system holding the
	// definition's packages and the dummy package files in env.Dummies.
	Bootstrap(ctx context.Context, root string, def *tmpl.Definition, env Env) error
	// Update upgrades every package of the installed root and installs the
	// definition's packages and env.Dummies that are missing.
	Update(ctx context.Context, root string, def *tmpl.Definition, env Env) error
	// Query lists the packages installed in root, sorted by name and architecture.
	Query(ctx context.Context, root string) ([]Package, error)
	// ConfigureRepos writes root's repository configuration for the
	// definition: pointing at cacher (renaming the original files to
	// *.disabled), or at the mirrors when cacher is nil. It is idempotent.
	ConfigureRepos(root string, def *tmpl.Definition, cacher *url.URL) error
	// Dummy builds the package file for a dummy package in dir.
	Dummy(ctx context.Context, dir string, d tmpl.Dummy) (string, error)
}

// Env is what a package-manager run gets from the build.
type Env struct {
	Cacher  *url.URL  // pkg-cacher to fetch through; nil fetches from the mirrors
	Dummies []string  // dummy package files to install with the packages
	Output  io.Writer // the package manager's output, line by line
	Verbose bool      // ask the package manager for details
}

// Package is one installed package.
type Package struct {
	Name, Version, Arch string
}
