package repofmt

import (
	"net/url"
	"path"
	"regexp"
	"strings"
)

// rpmExt are yum/dnf packages and delta packages.
var rpmExt = []string{".rpm", ".drpm"}

// checksumPrefixed matches createrepo's default repodata names:
// <hex checksum>-primary.xml.gz, <hex>-filelists.xml.zck ...
var checksumPrefixed = regexp.MustCompile(`^[0-9a-f]{32,128}-[^/]+$`)

// classifyRPM classifies the files of a yum/dnf repository:
//
//   - *.rpm, *.drpm and checksum-prefixed repodata/ files: Immutable;
//   - repodata/repomd.xml (+ .asc, .key) and repodata/ files without a
//     checksum prefix (createrepo --simple-md-filenames): Volatile;
//   - metalink and mirrorlist answers: MirrorList. They are recognised by a
//     path segment named "metalink" or "mirrorlist" (Fedora's /metalink?repo=,
//     Rocky's /mirrorlist?repo=, AlmaLinux's /mirrorlist/9/baseos) or by a
//     query naming both repo and arch (CentOS 7's /?release=7&arch=x86_64&repo=os).
func classifyRPM(p, base, query string) (Class, bool) {
	for _, ext := range rpmExt {
		if strings.HasSuffix(base, ext) {
			return Immutable, true
		}
	}
	if path.Base(path.Dir(p)) == "repodata" {
		if checksumPrefixed.MatchString(base) {
			return Immutable, true
		}
		return Volatile, true
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "metalink" || seg == "mirrorlist" {
			return MirrorList, true
		}
	}
	if q, err := url.ParseQuery(query); err == nil && q.Has("repo") && q.Has("arch") {
		return MirrorList, true
	}
	return 0, false
}
