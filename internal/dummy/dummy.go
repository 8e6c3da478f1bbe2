// Package dummy builds empty packages that stand in for real ones (udev, a
// kernel, an initramfs generator) so that dependencies on them resolve inside
// a container template without installing what a container cannot use.
package dummy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"vzpkg2/internal/tmpl"
)

// Deb writes the dummy package d as a .deb into dir and returns its path. The
// package is Architecture: all, holds only its documentation directory, and
// provides d.Provides. With SOURCE_DATE_EPOCH set in the environment the file
// is byte-for-byte reproducible (dpkg-deb honours it).
func Deb(ctx context.Context, dir string, d tmpl.Dummy) (string, error) {
	if d.Name == "" || d.Version == "" {
		return "", fmt.Errorf("dummy package needs a name and a version, got %q %q", d.Name, d.Version)
	}
	tree, err := os.MkdirTemp(dir, d.Name+".tree-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tree)
	if err := os.MkdirAll(filepath.Join(tree, "DEBIAN"), 0o755); err != nil {
		return "", err
	}
	doc := filepath.Join(tree, "usr/share/doc", d.Name)
	if err := os.MkdirAll(doc, 0o755); err != nil {
		return "", err
	}
	readme := "This is an empty package installed by vzpkg in place of " + d.Name +
		",\nwhich a container does not need. Removing it may pull in the real package.\n"
	if err := os.WriteFile(filepath.Join(doc, "README.vzpkg"), []byte(readme), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tree, "DEBIAN/control"), []byte(debControl(d)), 0o644); err != nil {
		return "", err
	}
	out := filepath.Join(dir, debFileName(d))
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--root-owner-group", "-Zxz", "--build", tree, out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build dummy package %s: dpkg-deb: %w: %s", d.Name, err, strings.TrimSpace(string(msg)))
	}
	return out, nil
}

func debControl(d tmpl.Dummy) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Package: %s\nVersion: %s\nArchitecture: all\nMulti-Arch: foreign\n", d.Name, d.Version)
	fmt.Fprintf(&b, "Section: misc\nPriority: optional\nMaintainer: vzpkg <vzpkg@localhost>\n")
	if len(d.Provides) > 0 {
		fmt.Fprintf(&b, "Provides: %s\n", strings.Join(d.Provides, ", "))
	}
	fmt.Fprintf(&b, "Description: empty stand-in for %s in a container template\n", d.Name)
	fmt.Fprintf(&b, " Installed by vzpkg so that packages depending on %s install\n without it; a container does not need it.\n", d.Name)
	return b.String()
}

// debFileName is Debian's name for the package file; the epoch is dropped.
func debFileName(d tmpl.Dummy) string {
	v := d.Version
	if i := strings.IndexByte(v, ':'); i >= 0 {
		v = v[i+1:]
	}
	return d.Name + "_" + v + "_all.deb"
}
