// Package tmpl loads vzpkg's template metadata tree and resolves every OS template
// it describes into a Definition: the one value a template build needs.
//
// The tree is <root>/[config.yaml], <root>/<distro>/, <root>/<distro>/<version>/ and
// <root>/<distro>/<version>/<arch>/, each directory with an optional config.yaml.
// A setting given at an outer level is inherited by the inner ones, which may
// override it; several roots (a search path, local overrides first) are layered
// level by level. Package sets and dummy packages are built with a small list
// algebra (reset, include, add, remove). Every resolved value remembers the
// file:line it came from, and every error names one. docs/templates.md is the
// user's description of the format.
package tmpl

import (
	"fmt"
	"slices"

	"vzpkg2/internal/rootfs"
)

// Source is where a value was set: a file and a 1-based line, or a directory
// (Line 0) for values that come from the tree's shape.
type Source struct {
	File string
	Line int
}

func (s Source) String() string {
	if s.Line > 0 {
		return fmt.Sprintf("%s:%d", s.File, s.Line)
	}
	return s.File
}

// Packager kinds a template may name. A script packager is written
// "script:NAME" in config.yaml; its executables are NAME-<operation>.
const (
	PackagerApt    = "apt"
	PackagerDnf    = "dnf"
	PackagerScript = "script"
)

// ScriptDir is the directory of a tree root that holds script packagers'
// executables (NAME-<operation>). Like every name starting with _, it is
// not a level of the tree.
const ScriptDir = "_packagers"

// Phase is a point of a template build at which hook scripts run.
type Phase string

// Hook phases, in the order a build reaches them. The names and meanings follow
// mmdebstrap's hooks; dnf builds run extract and essential hooks right after
// the package installation.
const (
	PhaseSetup     Phase = "setup"     // the empty root exists, nothing is installed
	PhaseExtract   Phase = "extract"   // essential packages are unpacked, not configured
	PhaseEssential Phase = "essential" // essential packages are installed
	PhaseCustomize Phase = "customize" // every package is installed, before fixups
	PhaseFinal     Phase = "final"     // after fixups and repository rewrite, before packing
)

// Phases returns the hook phases in build order.
func Phases() []Phase {
	return []Phase{PhaseSetup, PhaseExtract, PhaseEssential, PhaseCustomize, PhaseFinal}
}

// Arches are the architecture directory names a tree may use (vzpkg's names,
// which are also the rpm names; Debian and Ubuntu call them arch_name).
func Arches() []string {
	return []string{"aarch64", "i686", "ppc64le", "riscv64", "s390x", "x86_64"}
}

// Variants are the mmdebstrap variants an apt template may name.
func Variants() []string {
	return []string{"apt", "buildd", "custom", "debootstrap", "essential", "extract", "important", "minbase", "required", "standard"}
}

// Bootstrappers are the programs an apt template may be bootstrapped with;
// the first is the default.
func Bootstrappers() []string { return []string{"mmdebstrap", "debootstrap"} }

// Fixup is a named change a build applies to a template's root after the
// packages are installed; package rootfs implements them and owns their
// names and documentation.
type Fixup = rootfs.FixupInfo

// Fixups returns the known fixups, sorted by name. Templates may name only these.
func Fixups() []Fixup { return rootfs.Fixups() }

func lookupFixup(name string) (Fixup, bool) {
	fs := Fixups()
	i := slices.IndexFunc(fs, func(f Fixup) bool { return f.Name == name })
	if i < 0 {
		return Fixup{}, false
	}
	return fs[i], true
}

// Definition is one fully resolved template: everything a build needs.
type Definition struct {
	Name     string // <distro>-<version>-<arch>[-<set>]; the set "default" has no suffix
	Distro   string // directory name, e.g. "debian"
	Version  string // directory name, e.g. "12"
	Arch     string // vzpkg's architecture name, e.g. "x86_64"
	ArchName string // the distribution's name for Arch, e.g. "amd64"; Arch when not set
	Set      string // the package set, e.g. "minimal" or "default"

	Packager       string // PackagerApt, PackagerDnf or PackagerScript
	ScriptPackager string // NAME of "script:NAME"; empty for apt and dnf
	Suite          string // apt: release codename, e.g. "bookworm"
	Releasever     string // dnf: $releasever, e.g. "9"
	Variant        string // apt: mmdebstrap variant, e.g. "minbase"
	Bootstrap      string // apt: "debootstrap" to bootstrap with it; empty means mmdebstrap
	// ScriptDirs are the ScriptDir directories of the tree's roots, first
	// root first, for a script packager: where its executables are looked
	// for before the system's directory.
	ScriptDirs []string

	Repos     []Repo
	Keys      []string // signing keys for every repository: keyring paths (apt) or key URLs (dnf)
	Packages  []string // the resolved package set, in a stable order
	Dummies   []Dummy  // packages installed as empty stand-ins
	Fixups    []string // names from Fixups, in the order to apply them
	UseCacher bool     // the built template's repositories point at pkg-cacher
	WeakDeps  bool     // install weak dependencies (apt: Recommends; dnf: install_weak_deps)
	NoDocs    bool     // leave documentation out (dnf only: tsflags=nodocs)
	Hooks     map[Phase][]string

	// PathExclude and PathInclude are dpkg path filters (apt only): glob
	// patterns of paths dpkg leaves out of every package it installs, and
	// exceptions to them. Includes come after excludes, so an include wins.
	PathExclude []string
	PathInclude []string

	// Provenance maps a field to where its value was set. Keys are the
	// config.yaml names: "packager", "suite", "weak_deps", "repos.<name>", "repos.<name>.mirrors",
	// and, for each item of a list, "<list>[<item>]": "packages[curl]",
	// "dummies[udev]", "keys[<path>]", "fixups[apt-clean]", "hooks.customize[<path>]",
	// "path_exclude[/usr/share/doc/*]".
	Provenance map[string]Source
}

// Repo is one package repository.
type Repo struct {
	Name       string
	Mirrors    []string // apt: archive roots; dnf: baseurls; tried in order
	Suites     []string // apt only
	Components []string // apt only
	Metalink   string   // dnf only
	Mirrorlist string   // dnf only
	Keys       []string // keys for this repository only; empty means Definition.Keys
}

// Dummy is an empty package that stands in for a real one (and the virtual
// packages it provides) so dependencies resolve without installing what a
// container cannot use.
type Dummy struct {
	Name     string
	Version  string
	Provides []string
}

// TemplateName returns the name of the template for the given tree position and set.
func TemplateName(distro, version, arch, set string) string {
	n := distro + "-" + version + "-" + arch
	if set != "" && set != DefaultSet {
		n += "-" + set
	}
	return n
}

// DefaultSet is the set a template name without a set suffix refers to.
const DefaultSet = "default"
