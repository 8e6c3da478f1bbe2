// Package packager is the contract between vzpkg and one family of package
// managers (apt, dnf, external scripts): bootstrap an empty root, install,
// remove and update packages in an installed root, list what is installed
// and what could be updated, point the root's repository configuration at
// pkg-cacher, and build the dummy packages that stand in for what a
// container cannot use.
//
// A backend works from a Spec, a packager-neutral description of a template
// (repositories, keys, packages, dummies, release), never from the template
// tree's own types. Backends are looked up by name in a Registry, which the
// program builds once. packagertest is the conformance suite every backend
// passes.
package packager

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
)

// Packager is one package-manager family. Every method that runs a package
// manager on root treats root as hostile: files inside it are reached
// through an os.Root, its own programs run in a chroot.
type Packager interface {
	// Bootstrap turns the empty directory root into a system holding
	// spec's packages and the dummy package files in env.Dummies, fetched
	// from spec's repositories (through env.Cacher when it is not nil).
	Bootstrap(ctx context.Context, root string, spec *Spec, env Env) error
	// Install installs pkgs (names, or package files) into the installed
	// root from spec's repositories. An unknown package is an error and
	// leaves root's package set unchanged.
	Install(ctx context.Context, root string, spec *Spec, env Env, pkgs []string) error
	// Remove removes pkgs from root. A package that is not installed is an
	// error and leaves root's package set unchanged.
	Remove(ctx context.Context, root string, spec *Spec, env Env, pkgs []string) error
	// Update upgrades pkgs in root, every package when pkgs is empty, and
	// then installs what of spec's packages and env.Dummies is missing. It
	// reports whether the installed packages changed.
	Update(ctx context.Context, root string, spec *Spec, env Env, pkgs []string) (changed bool, err error)
	// Query lists the packages installed in root, sorted by name and
	// architecture.
	Query(ctx context.Context, root string) ([]Package, error)
	// CheckUpdates lists the installed packages of root that spec's
	// repositories hold a newer version of, with that version, sorted as
	// Query sorts. It changes nothing in root.
	CheckUpdates(ctx context.Context, root string, spec *Spec, env Env) ([]Package, error)
	// ConfigureRepos writes root's repository configuration for spec:
	// pointing at cacher (renaming the original files to *.disabled), or
	// left as the packages installed it when cacher is nil. It is
	// idempotent.
	ConfigureRepos(ctx context.Context, root string, spec *Spec, cacher *url.URL) error
	// Dummy builds the package file of d in dir and returns its path.
	Dummy(ctx context.Context, dir string, spec *Spec, d Dummy) (string, error)
}

// Spec is what a backend knows of a template: a packager-neutral
// description, which the build makes from the template's definition.
// Fields a backend does not use are ignored by it.
type Spec struct {
	Name     string // the template's name, for messages
	Arch     string // vzpkg's (and rpm's) architecture name, e.g. "x86_64"
	ArchName string // the distribution's name for Arch, e.g. "amd64"

	Suite      string // apt: release codename, e.g. "bookworm"
	Releasever string // dnf: $releasever, e.g. "9"
	Variant    string // apt: mmdebstrap variant, e.g. "minbase"
	Bootstrap  string // apt: "debootstrap" to bootstrap with it; empty means mmdebstrap

	Repos    []Repo
	Keys     []string // signing keys for every repository: keyring paths (apt) or key URLs (dnf)
	Packages []string // the package set, in a stable order
	Dummies  []Dummy  // packages installed as empty stand-ins

	WeakDeps bool // install weak dependencies (apt: Recommends; dnf: install_weak_deps)
	NoDocs   bool // leave documentation out (dnf: tsflags=nodocs)

	// PathExclude and PathInclude are path filters (apt: dpkg's
	// path-exclude and path-include): globs of paths left out of every
	// package installed, and exceptions to them.
	PathExclude []string
	PathInclude []string

	// Hooks maps a phase name ("setup", "extract", "essential",
	// "customize") to the executables run with the root's path at it.
	Hooks map[string][]string
}

// Repo is one package repository.
type Repo struct {
	Name       string
	Mirrors    []string // apt: archive roots; dnf: baseurls; tried in order
	Suites     []string // apt only
	Components []string // apt only
	Metalink   string   // dnf only
	Mirrorlist string   // dnf only
	Keys       []string // keys for this repository only; empty means Spec.Keys
}

// RepoKeys returns the keys that sign r: its own, or the spec's.
func (s *Spec) RepoKeys(r Repo) []string {
	if len(r.Keys) > 0 {
		return r.Keys
	}
	return s.Keys
}

// Dummy is an empty package standing in for a real one and the virtual
// packages it provides.
type Dummy struct {
	Name     string
	Version  string // the distribution's form, with an epoch: "99:1.0-vz1"
	Provides []string
}

// Env is what a package-manager run gets from its caller.
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

// SortPackages sorts pkgs by name, then architecture, as Query returns them.
func SortPackages(pkgs []Package) {
	slices.SortFunc(pkgs, func(a, b Package) int {
		return strings.Compare(a.Name+"\x00"+a.Arch, b.Name+"\x00"+b.Arch)
	})
}

// Registry maps packager names (a template's `packager:`) to backends. It is
// built once, by NewRegistry, and not changed afterwards.
type Registry struct {
	backends map[string]Packager
	families map[string]Family
}

// Family makes the backends of a kind named "KIND:NAME", such as
// "script:pacman": it returns NAME's backend, or an error saying why there
// is none.
type Family func(name string) (Packager, error)

// NewRegistry returns the registry of the given backends by name, and of
// the families of backends by kind (nil when there are none).
func NewRegistry(backends map[string]Packager, families map[string]Family) *Registry {
	r := &Registry{backends: make(map[string]Packager, len(backends)), families: make(map[string]Family, len(families))}
	for name, p := range backends {
		r.backends[name] = p
	}
	for kind, f := range families {
		r.families[kind] = f
	}
	return r
}

// Lookup returns the backend called name: a registered backend, or, for
// "KIND:NAME", the one KIND's family makes.
func (r *Registry) Lookup(name string) (Packager, error) {
	if p, ok := r.backends[name]; ok {
		return p, nil
	}
	if kind, n, ok := strings.Cut(name, ":"); ok {
		if f, ok := r.families[kind]; ok {
			return f(n)
		}
	}
	return nil, fmt.Errorf("no packager %q (this vzpkg has %s)", name, strings.Join(r.Names(), ", "))
}

// Names returns the registered packager names, sorted, a family's as
// "KIND:NAME".
func (r *Registry) Names() []string {
	var names []string
	for n := range r.backends {
		names = append(names, n)
	}
	for kind := range r.families {
		names = append(names, kind+":NAME")
	}
	slices.Sort(names)
	return names
}

// ThroughCacher rewrites a URL to pkg-cacher's URL-prefix form:
// http://host/path becomes CACHER/host/path and https://host/path becomes
// CACHER/HTTPS///host/path.
func ThroughCacher(cacher *url.URL, u string) string {
	base := strings.TrimSuffix(cacher.String(), "/")
	if rest, ok := strings.CutPrefix(u, "https://"); ok {
		return base + "/HTTPS///" + rest
	}
	return base + "/" + strings.TrimPrefix(u, "http://")
}

// Diff lists what changed from the package list a to b, by name and
// architecture: "+ name version" added, "- name version" removed,
// "~ name old -> new" changed.
func Diff(a, b []Package) []string {
	key := func(p Package) string { return p.Name + ":" + p.Arch }
	old := map[string]Package{}
	for _, p := range a {
		old[key(p)] = p
	}
	var diff []string
	for _, p := range b {
		o, ok := old[key(p)]
		switch {
		case !ok:
			diff = append(diff, fmt.Sprintf("+ %s %s", p.Name, p.Version))
		case o.Version != p.Version:
			diff = append(diff, fmt.Sprintf("~ %s %s -> %s", p.Name, o.Version, p.Version))
		}
		delete(old, key(p))
	}
	for _, p := range a {
		if _, gone := old[key(p)]; gone {
			diff = append(diff, fmt.Sprintf("- %s %s", p.Name, p.Version))
		}
	}
	return diff
}
