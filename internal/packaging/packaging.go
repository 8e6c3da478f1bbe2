// Package packaging is how vzpkg2 is installed: one list of the files a
// system gets (the programs, man pages, completions, the shipped template
// tree, example configuration, systemd units, logrotate), used by both
// `make install` and the .deb and .rpm packages built with nfpm.
package packaging

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	tree "vzpkg2/templates"
)

// Target is what the layout is for; the one difference is where zsh looks
// for completions.
type Target string

const (
	Deb     Target = "deb"     // Debian's zsh reads share/zsh/vendor-completions
	RPM     Target = "rpm"     // Fedora's and the other RPM distributions' zsh reads share/zsh/site-functions
	Install Target = "install" // make install: share/zsh/site-functions
)

// File is one installed file.
type File struct {
	Path   string      // where it is installed, absolute
	Mode   fs.FileMode // 0755 or 0644
	Config bool        // a configuration file the administrator may change: kept on upgrade and removal
	Src    string      // the file it is copied from, or empty when Data is the content
	Data   []byte      // the content when it is generated (a gzipped man page, a unit for another prefix)
}

// Content returns the file's bytes.
func (f File) Content() ([]byte, error) {
	if f.Src == "" {
		return f.Data, nil
	}
	return os.ReadFile(f.Src)
}

// The user and directories the packages create for pkg-cacher.service.
const (
	User     = "pkg-cacher"
	CacheDir = "/var/cache/pkg-cacher"
	LogDir   = "/var/log/pkg-cacher"
)

// Layout lists the files installed from the source checkout src, with the
// programs taken from the directory bin, under prefix (/usr for packages,
// /usr/local by default for make install). Configuration goes to /etc
// whatever the prefix: the programs read it there. Man pages, completions
// and units are taken by glob, so a new one is installed without a change
// here. The list is sorted by Path.
func Layout(src, bin, prefix string, target Target) ([]File, error) {
	if !path.IsAbs(prefix) {
		return nil, fmt.Errorf("prefix %q is not an absolute path", prefix)
	}
	prefix = path.Clean(prefix)
	var out []File
	add := func(dst string, mode fs.FileMode, src string) {
		out = append(out, File{Path: dst, Mode: mode, Src: src})
	}
	for _, prog := range []string{"vzpkg", "pkg-cacher"} {
		add(path.Join(prefix, "bin", prog), 0o755, filepath.Join(bin, prog))
	}

	pages, err := filepath.Glob(filepath.Join(src, "docs/man/*.[1-9]"))
	if err != nil {
		return nil, err
	}
	for _, p := range pages {
		data, err := gzipFile(p)
		if err != nil {
			return nil, err
		}
		name := filepath.Base(p)
		out = append(out, File{Path: path.Join(prefix, "share/man", "man"+name[len(name)-1:], name+".gz"), Mode: 0o644, Data: data})
	}

	zsh := "share/zsh/site-functions"
	if target == Deb {
		zsh = "share/zsh/vendor-completions"
	}
	for shell, dir := range map[string]string{"bash": "share/bash-completion/completions", "zsh": zsh, "fish": "share/fish/vendor_completions.d"} {
		files, err := filepath.Glob(filepath.Join(src, "etc/completions", shell, "*"))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			add(path.Join(prefix, dir, filepath.Base(f)), 0o644, f)
		}
	}

	templates := filepath.Join(src, "templates")
	err = filepath.WalkDir(templates, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: only regular files are installed from the template tree", p)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o644)
		if fi.Mode()&0o111 != 0 { // hooks
			mode = 0o755
		}
		rel, _ := filepath.Rel(templates, p)
		if tree.IsSource(filepath.ToSlash(rel)) {
			return nil
		}
		add(path.Join(prefix, "share/vzpkg/templates", filepath.ToSlash(rel)), mode, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("template tree: %w", err)
	}

	var units []string
	for _, pattern := range []string{"etc/systemd/*.service", "etc/systemd/*.timer"} {
		m, err := filepath.Glob(filepath.Join(src, pattern))
		if err != nil {
			return nil, err
		}
		units = append(units, m...)
	}
	for _, u := range units {
		f := File{Path: path.Join(prefix, "lib/systemd/system", filepath.Base(u)), Mode: 0o644, Src: u}
		if prefix != "/usr" { // the units name /usr/bin/PROGRAM
			data, err := os.ReadFile(u)
			if err != nil {
				return nil, err
			}
			f.Src, f.Data = "", bytes.ReplaceAll(data, []byte("=/usr/bin/"), []byte("="+prefix+"/bin/"))
		}
		out = append(out, f)
	}
	add(path.Join(prefix, "share/vzpkg/avahi/pkg-cacher.service"), 0o644, filepath.Join(src, "etc/avahi/pkg-cacher.service"))

	for dst, from := range map[string]string{
		"/etc/pkg-cacher/pkg-cacher.conf": "etc/pkg-cacher.conf",
		"/etc/vzpkg/vzpkg.conf":           "etc/vzpkg.conf",
		"/etc/logrotate.d/pkg-cacher":     "etc/logrotate.d/pkg-cacher",
	} {
		out = append(out, File{Path: dst, Mode: 0o644, Config: true, Src: filepath.Join(src, from)})
	}

	for _, f := range out {
		if f.Src == "" {
			continue
		}
		if fi, err := os.Stat(f.Src); err != nil {
			return nil, fmt.Errorf("%s: %w", f.Path, err)
		} else if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: %s is not a regular file", f.Path, f.Src)
		}
	}
	slices.SortFunc(out, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// gzipFile compresses a man page as man-db reads it, the same bytes every
// time (no name or time in the header).
func gzipFile(name string) ([]byte, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
