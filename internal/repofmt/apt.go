package repofmt

import (
	"regexp"
	"strings"
)

// debExt are Debian package artefacts published under versioned names.
var debExt = []string{".deb", ".udeb", ".ddeb", ".dsc"}

// sourceTarball matches Debian source artefacts: foo_1.2.orig.tar.xz, .debian.tar.xz, .diff.gz.
var sourceTarball = regexp.MustCompile(`_[^/]+\.(orig(-[A-Za-z0-9-]+)?\.tar|debian\.tar|tar|diff)\.(gz|xz|bz2|zst|lzma)(\.asc)?$`)

// classifyApt classifies the files of an apt repository whose names say
// they are immutable: packages, pool source artefacts and
// dists/<suite>/<comp>/binary-<arch>/by-hash/<ALGO>/<hex>. Everything else
// under dists/ (InRelease, Packages*, i18n/ ...) is left to the volatile default.
func classifyApt(p, base string) (Class, bool) {
	for _, ext := range debExt {
		if strings.HasSuffix(base, ext) {
			return Immutable, true
		}
	}
	switch {
	case strings.Contains(p, "/by-hash/"):
		return Immutable, true
	case strings.Contains(p, "/pool/") && sourceTarball.MatchString(base):
		return Immutable, true
	}
	return 0, false
}
