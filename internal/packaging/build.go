package packaging

import (
	"bytes"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	"github.com/goreleaser/nfpm/v2/rpm"

	"vzpkg2/internal/atomicfile"
)

// Name is the packages' name.
const Name = "vzpkg2"

// Meta is what a package says about itself besides its files.
type Meta struct {
	Version string    // a Debian and RPM upstream version (see Version)
	Arch    string    // Go's name for the architecture (amd64, arm64)
	MTime   time.Time // every file's time and the build time: the same bytes from the same commit
	Scripts string    // the directory of the maintainer scripts postinst, prerm and postrm
}

// packager is what nfpm's deb and rpm packagers provide.
type packager interface {
	Package(info *nfpm.Info, w io.Writer) error
	ConventionalFileName(info *nfpm.Info) string
}

// Build writes the .deb (target Deb) or .rpm (RPM) of files, staged first
// under the empty directory stage, into dir, and returns its file name
// there (vzpkg2_VERSION-1_amd64.deb, vzpkg2-VERSION-1.x86_64.rpm).
func Build(target Target, files []File, m Meta, stage, dir string) (string, error) {
	var p packager
	var suggests []string
	switch target {
	case Deb:
		p, suggests = deb.Default, []string{"mmdebstrap | debootstrap", "dnf", "rpm", "lxc"}
	case RPM:
		p, suggests = rpm.DefaultRPM, []string{"dnf", "lxc"}
	default:
		return "", fmt.Errorf("no package format for %q", target)
	}
	if err := InstallTo(files, stage, func(File, string) {}); err != nil {
		return "", err
	}
	info := &nfpm.Info{
		Name:          Name,
		Arch:          m.Arch,
		Platform:      "linux",
		Version:       m.Version,
		VersionSchema: "none",
		Release:       "1",
		Section:       "admin",
		Priority:      "optional",
		Maintainer:    "vzpkg2 developers <vzpkg2@localhost>",
		Description: "caching proxy for apt and dnf repositories, and OS template manager\n" +
			"pkg-cacher caches Debian, Ubuntu, Fedora and Enterprise Linux repositories for\n" +
			"the hosts and containers of a site, checking every file against the metadata.\n" +
			"vzpkg builds OpenVZ-style container OS templates through it and manages the\n" +
			"packages of installed containers.",
		DisableGlobbing: true,
		MTime:           m.MTime,
		Overridables: nfpm.Overridables{
			Umask:    0o022,
			Suggests: suggests,
			Contents: contents(files, stage, m.MTime),
			Scripts: nfpm.Scripts{
				PostInstall: filepath.Join(m.Scripts, "postinst"),
				PreRemove:   filepath.Join(m.Scripts, "prerm"),
				PostRemove:  filepath.Join(m.Scripts, "postrm"),
			},
			RPM: nfpm.RPM{
				Summary:   "caching proxy for apt and dnf repositories, and OS template manager",
				Group:     "System Environment/Daemons",
				BuildHost: Name, // not the build machine's name: the same bytes anywhere
			},
		},
	}
	name := filepath.Join(dir, p.ConventionalFileName(info))
	var buf bytes.Buffer
	if err := p.Package(info, &buf); err != nil {
		return "", fmt.Errorf("build %s: %w", name, err)
	}
	return name, atomicfile.WriteFile(name, buf.Bytes(), 0o644)
}

// ownDirs are the directories the package owns with everything under
// them: rpm removes them with the package (dpkg records every directory).
var ownDirs = []string{"/etc/pkg-cacher", "/etc/vzpkg", "/usr/share/vzpkg"}

// contents is files, staged under stage, as nfpm takes them, with the
// directories of ownDirs that hold them.
func contents(fs []File, stage string, mtime time.Time) files.Contents {
	var out files.Contents
	dirs := map[string]bool{}
	for _, f := range fs {
		for _, own := range ownDirs {
			if !strings.HasPrefix(f.Path, own+"/") {
				continue
			}
			for d := path.Dir(f.Path); !dirs[d] && len(d) >= len(own); d = path.Dir(d) {
				dirs[d] = true
				out = append(out, &files.Content{Destination: d, Type: files.TypeDir,
					FileInfo: &files.ContentFileInfo{Owner: "root", Group: "root", Mode: 0o755, MTime: mtime}})
			}
		}
		typ := files.TypeFile
		if f.Config {
			typ = files.TypeConfigNoReplace // rpm: %config(noreplace); deb: a conffile
		}
		out = append(out, &files.Content{
			Source:      filepath.Join(stage, filepath.FromSlash(f.Path)),
			Destination: f.Path,
			Type:        typ,
			FileInfo:    &files.ContentFileInfo{Owner: "root", Group: "root", Mode: f.Mode, MTime: mtime},
		})
	}
	return out
}
