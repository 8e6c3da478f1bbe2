package tmpl

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// MaxNameLen is the longest template name a build can use, in bytes: the
// longest file name a build makes from a name NAME is NAME.tar.zst-old.sha256
// (the previous template's checksum), 19 bytes more than NAME, and a file name
// has at most 255 bytes (NAME_MAX of Linux file systems). The private
// directory, .vzpkg-NAME-<up to 10 digits>, needs 18.
const MaxNameLen = 255 - len(".tar.zst-old.sha256")

var templateNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// CheckName reports whether name can be the name of a template
// (DISTRO-VERSION-ARCH[-SET], as TemplateName makes them): only lower-case
// letters, digits, '.', '_' and '-', an architecture among its parts, and at
// most MaxNameLen bytes. It says nothing about whether a tree defines it. A
// name that passes is a plain file name: no '/', no leading '.'.
func CheckName(name string) error {
	if !templateNameRE.MatchString(name) {
		return fmt.Errorf("template name %q: want DISTRO-VERSION-ARCH[-SET] of lower-case letters, digits, '.', '_' and '-' (e.g. debian-12-x86_64-minimal)", name)
	}
	parts := strings.Split(name, "-")
	if !slices.ContainsFunc(parts[1:], func(p string) bool { return slices.Contains(Arches(), p) }) {
		return fmt.Errorf("template name %q has no architecture (%s): want DISTRO-VERSION-ARCH[-SET]", name, strings.Join(Arches(), ", "))
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("template name %s... is %d bytes; at most %d fit in the file names a build makes (NAME.tar.zst-old.sha256 in at most 255 bytes)", name[:40], len(name), MaxNameLen)
	}
	return nil
}
