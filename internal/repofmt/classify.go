// Package repofmt knows the file layout of distribution repositories (apt and
// yum/dnf): which files never change once published and which are indexes that
// must be revalidated.
package repofmt

import (
	"path"
	"regexp"
	"strings"
)

// Class says how a cache may treat a repository file.
type Class int

const (
	// Volatile files (indexes, unknown paths) change in place: serve a cached
	// copy only for a short window, then revalidate with the upstream.
	Volatile Class = iota
	// Immutable files (packages, by-hash indexes) never change under their
	// name once published: a cached copy is served without asking upstream.
	Immutable
)

func (c Class) String() string {
	if c == Immutable {
		return "immutable"
	}
	return "volatile"
}

// immutableExt are package and source artefacts published under versioned names.
var immutableExt = []string{
	".deb", ".udeb", ".ddeb", ".dsc",
	".rpm", ".drpm",
}

// sourceTarball matches Debian source artefacts: foo_1.2.orig.tar.xz, .debian.tar.xz, .diff.gz.
var sourceTarball = regexp.MustCompile(`_[^/]+\.(orig(-[A-Za-z0-9-]+)?\.tar|debian\.tar|tar|diff)\.(gz|xz|bz2|zst|lzma)(\.asc)?$`)

// checksumPrefixed matches createrepo's default repodata names: <hex>-primary.xml.gz.
var checksumPrefixed = regexp.MustCompile(`^[0-9a-f]{32,128}-[^/]+$`)

// Classify returns the class of the repository file at p, a cleaned URL path.
func Classify(p string) Class {
	base := path.Base(p)
	dir := path.Dir(p)
	switch {
	case strings.Contains(p, "/by-hash/"):
		// dists/<suite>/<comp>/binary-<arch>/by-hash/SHA256/<hex>
		return Immutable
	case path.Base(dir) == "repodata" && checksumPrefixed.MatchString(base):
		return Immutable
	case strings.Contains(p, "/pool/") && sourceTarball.MatchString(base):
		return Immutable
	}
	for _, ext := range immutableExt {
		if strings.HasSuffix(base, ext) {
			return Immutable
		}
	}
	return Volatile
}
