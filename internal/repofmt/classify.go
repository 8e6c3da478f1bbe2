// Package repofmt knows the file layout of distribution repositories (apt,
// yum/dnf and pacman): which files never change once published, which are indexes that
// must be revalidated, and which are mirror lists that go stale fastest; and
// it parses the indexes that say what each file must be (Release/InRelease,
// Packages/Sources, repomd.xml, primary.xml).
package repofmt

import "path"

// Class says how a cache may treat a repository file.
type Class int

const (
	// Volatile files (indexes, unknown paths) change in place: serve a cached
	// copy only for a short window, then revalidate with the upstream.
	Volatile Class = iota
	// Immutable files (packages, by-hash indexes, checksum-named repodata)
	// never change under their name once published: a cached copy is served
	// without asking upstream, and an HTML page is never one of them.
	Immutable
	// MirrorList files (dnf's metalink and mirrorlist answers) are volatile
	// with a shorter window: a metalink carries the checksums of the
	// repository's current repomd.xml, and a stale one makes every mirror
	// look broken.
	MirrorList
)

func (c Class) String() string {
	switch c {
	case Immutable:
		return "immutable"
	case MirrorList:
		return "mirrorlist"
	}
	return "volatile"
}

// Classify returns the class of the repository file at p, a cleaned URL
// path, requested with the raw query string query.
func Classify(p, query string) Class {
	base := path.Base(p)
	if c, ok := classifyRPM(p, base, query); ok {
		return c
	}
	if c, ok := classifyApt(p, base); ok {
		return c
	}
	if c, ok := classifyPacman(base); ok {
		return c
	}
	return Volatile
}
