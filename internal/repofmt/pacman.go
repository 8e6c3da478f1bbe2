package repofmt

import "regexp"

// pacmanPackage matches pacman package files and their detached
// signatures: NAME-VERSION-REL-ARCH.pkg.tar.zst, .xz, .gz ... (.sig).
var pacmanPackage = regexp.MustCompile(`\.pkg\.tar(\.(zst|xz|gz|bz2|lz4|lrz|lzo|Z))?(\.sig)?$`)

// pacmanDB matches a pacman repository's databases, which repo-add
// rewrites in place: REPO.db and REPO.files (links), REPO.db.tar.gz,
// REPO.files.tar.zst ..., and their signatures.
var pacmanDB = regexp.MustCompile(`\.(db|files)(\.tar(\.(zst|xz|gz|bz2|lz4|lrz|lzo|Z))?)?(\.sig)?$`)

// classifyPacman classifies the files of a pacman repository: packages
// and their signatures are Immutable (a rebuild gets a new pkgrel, so a
// new name), the databases Volatile.
func classifyPacman(base string) (Class, bool) {
	switch {
	case pacmanPackage.MatchString(base):
		return Immutable, true
	case pacmanDB.MatchString(base):
		return Volatile, true
	}
	return 0, false
}
