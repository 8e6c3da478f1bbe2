package container

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	"vzpkg2/internal/packager"
)

// specFor describes the installed root r for its packager p: the
// repositories its own configuration names (which, in a template vzpkg
// built, point at pkg-cacher), its release and its path filters. Nothing
// of the template tree is used: the container may have been changed since.
// vzpkg reads apt's and dnf's configuration itself; a script packager's
// NAME-repos reads its own. Key files the repositories name inside the root
// are copied into keyDir on the host, read through r.
func specFor(ctx context.Context, r *os.Root, rec Record, p packager.Packager, keyDir string) (*packager.Spec, error) {
	spec := &packager.Spec{Name: rec.Template, Arch: rec.Arch, ArchName: rec.ArchName, Suite: rec.Suite, Releasever: rec.Releasever}
	osr := osRelease(r)
	if spec.Arch == "" {
		spec.Arch = map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686"}[runtime.GOARCH]
	}
	switch rec.Packager {
	case "apt":
		if spec.Suite == "" {
			spec.Suite = osr["VERSION_CODENAME"]
		}
		if err := aptSources(r, spec); err != nil {
			return nil, err
		}
		if err := aptFilters(r, spec); err != nil {
			return nil, err
		}
	case "dnf":
		if spec.Releasever == "" {
			spec.Releasever = osr["VERSION_ID"]
		}
		if err := dnfRepos(r, spec, keyDir); err != nil {
			return nil, err
		}
	default:
		rr, ok := p.(rootRepos)
		if !ok {
			return nil, fmt.Errorf("packager %q: vzpkg manages containers of apt, dnf and script packagers", rec.Packager)
		}
		if spec.ArchName == "" {
			spec.ArchName = spec.Arch
		}
		if err := scriptRepos(ctx, r, rr, spec, keyDir); err != nil {
			return nil, err
		}
	}
	if len(spec.Repos) == 0 {
		return nil, errors.New("its repository configuration names no enabled repository")
	}
	return spec, nil
}

// osRelease reads etc/os-release (or usr/lib/os-release) of r.
func osRelease(r *os.Root) map[string]string {
	vals := map[string]string{}
	data, err := r.ReadFile("etc/os-release")
	if err != nil {
		if data, err = r.ReadFile("usr/lib/os-release"); err != nil {
			return vals
		}
	}
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok {
			vals[k] = strings.Trim(v, `"'`)
		}
	}
	return vals
}

// aptSources reads the one-line "deb" entries of etc/apt/sources.list and
// etc/apt/sources.list.d/*.list. Options in brackets ([signed-by=...],
// [arch=...]) are dropped: apt then checks the repositories against the
// keys in etc/apt/trusted.gpg.d, and fails (it never skips the check) when
// the key is elsewhere.
func aptSources(r *os.Root, spec *packager.Spec) error {
	files := []string{"etc/apt/sources.list"}
	more, err := fs.Glob(r.FS(), "etc/apt/sources.list.d/*.list")
	if err != nil {
		return err
	}
	files = append(files, more...)
	for _, f := range files {
		data, err := r.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return fmt.Errorf("read /%s: %w", f, err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			line, _, _ = strings.Cut(line, "#")
			fields := strings.Fields(line)
			if len(fields) == 0 || fields[0] != "deb" {
				continue
			}
			fields = fields[1:]
			if len(fields) > 0 && strings.HasPrefix(fields[0], "[") {
				for len(fields) > 0 && !strings.HasSuffix(fields[0], "]") {
					fields = fields[1:]
				}
				if len(fields) > 0 {
					fields = fields[1:]
				}
			}
			if len(fields) < 2 {
				return fmt.Errorf("/%s:%d: want deb URI SUITE [COMPONENT...]", f, i+1)
			}
			if !strings.HasPrefix(fields[0], "http://") && !strings.HasPrefix(fields[0], "https://") {
				return fmt.Errorf("/%s:%d: repository %s: vzpkg manages containers whose repositories are http(s) URLs", f, i+1, fields[0])
			}
			spec.Repos = append(spec.Repos, packager.Repo{Name: fmt.Sprintf("%s:%d", f, i+1),
				Mirrors: []string{fields[0]}, Suites: []string{fields[1]}, Components: fields[2:]})
		}
	}
	return nil
}

// aptFilters reads dpkg's path-exclude and path-include settings from
// etc/dpkg/dpkg.cfg.d/*, so that what the packager installs in the root
// stays as slim as the template made it (and the template's excludes file
// is kept: the apt backend rewrites it from the spec).
func aptFilters(r *os.Root, spec *packager.Spec) error {
	files, err := fs.Glob(r.FS(), "etc/dpkg/dpkg.cfg.d/*")
	if err != nil {
		return err
	}
	for _, f := range files {
		data, err := r.ReadFile(f)
		if err != nil {
			continue // a directory, a link leading out: not dpkg configuration vzpkg reads
		}
		for _, l := range strings.Split(string(data), "\n") {
			l = strings.TrimSpace(l)
			if v, ok := strings.CutPrefix(l, "path-exclude"); ok {
				spec.PathExclude = append(spec.PathExclude, strings.TrimLeft(v, "= \t"))
			} else if v, ok := strings.CutPrefix(l, "path-include"); ok {
				spec.PathInclude = append(spec.PathInclude, strings.TrimLeft(v, "= \t"))
			}
		}
	}
	return nil
}

// dnfRepos reads the enabled repositories of etc/yum.repos.d/*.repo.
// $releasever, $basearch and $arch are expanded; gpgkey file:// URLs are
// files of the root, copied into keyDir through r.
func dnfRepos(r *os.Root, spec *packager.Spec, keyDir string) error {
	files, err := fs.Glob(r.FS(), "etc/yum.repos.d/*.repo")
	if err != nil {
		return err
	}
	expand := strings.NewReplacer("$releasever", spec.Releasever, "${releasever}", spec.Releasever,
		"$basearch", spec.Arch, "${basearch}", spec.Arch, "$arch", spec.Arch, "${arch}", spec.Arch)
	nkeys := 0
	for _, f := range files {
		data, err := r.ReadFile(f)
		if err != nil {
			return fmt.Errorf("read /%s: %w", f, err)
		}
		type section struct {
			name string
			vals map[string][]string
		}
		var secs []*section
		var cur *section
		var key string
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		for sc.Scan() {
			line := sc.Text()
			t := strings.TrimSpace(line)
			switch {
			case t == "" || t[0] == '#' || t[0] == ';':
			case t[0] == '[' && strings.HasSuffix(t, "]"):
				cur = &section{name: t[1 : len(t)-1], vals: map[string][]string{}}
				secs = append(secs, cur)
				key = ""
			case cur != nil && (line[0] == ' ' || line[0] == '\t') && key != "":
				cur.vals[key] = append(cur.vals[key], strings.Fields(t)...)
			case cur != nil:
				k, v, ok := strings.Cut(t, "=")
				if !ok {
					continue
				}
				key = strings.TrimSpace(k)
				cur.vals[key] = strings.FieldsFunc(expand.Replace(v), func(c rune) bool { return c == ' ' || c == ',' || c == '\t' })
			}
		}
		for _, s := range secs {
			if en := s.vals["enabled"]; len(en) > 0 && en[0] == "0" {
				continue
			}
			repo := packager.Repo{Name: s.name}
			for _, u := range s.vals["baseurl"] {
				repo.Mirrors = append(repo.Mirrors, expand.Replace(u))
			}
			if m := s.vals["metalink"]; len(m) > 0 {
				repo.Metalink = expand.Replace(m[0])
			}
			if m := s.vals["mirrorlist"]; len(m) > 0 {
				repo.Mirrorlist = expand.Replace(m[0])
			}
			// The host's dnf fetches these: a file:// URL would have it read
			// the host's files as a repository.
			for _, u := range append(append([]string{}, repo.Mirrors...), repo.Metalink, repo.Mirrorlist) {
				if u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
					return fmt.Errorf("/%s: repository %s: %s: vzpkg manages containers whose repositories are http(s) URLs", f, s.name, u)
				}
			}
			for _, k := range s.vals["gpgkey"] {
				k = expand.Replace(k)
				if p, ok := strings.CutPrefix(k, "file://"); ok {
					data, err := r.ReadFile(strings.TrimPrefix(path.Clean(p), "/"))
					if err != nil {
						return fmt.Errorf("/%s: key %s: %w", f, k, err)
					}
					dst := filepath.Join(keyDir, fmt.Sprintf("%d.asc", nkeys))
					nkeys++
					if err := os.WriteFile(dst, data, 0o600); err != nil {
						return err
					}
					k = dst
				} else if !strings.HasPrefix(k, "http://") && !strings.HasPrefix(k, "https://") {
					return fmt.Errorf("/%s: key %s: want an http(s) or file:// URL", f, k)
				}
				repo.Keys = append(repo.Keys, k)
			}
			spec.Repos = append(spec.Repos, repo)
		}
	}
	return nil
}

// rootRepos is a backend that reads a root's repository configuration
// itself: a script packager, whose configuration format vzpkg does not
// know. keys are http(s) URLs or absolute paths in the root.
type rootRepos interface {
	Repos(ctx context.Context, root string, spec *packager.Spec) (repos []packager.Repo, keys []string, err error)
}

// scriptRepos fills spec with the repositories and keys p reads from the
// root r: the repositories must be http(s) URLs (the host fetches them),
// keys in the root are copied into keyDir through r.
func scriptRepos(ctx context.Context, r *os.Root, p rootRepos, spec *packager.Spec, keyDir string) error {
	repos, keys, err := p.Repos(ctx, r.Name(), spec)
	if err != nil {
		return err
	}
	for _, repo := range repos {
		for _, u := range repo.Mirrors {
			if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
				return fmt.Errorf("repository %s: %s: vzpkg manages containers whose repositories are http(s) URLs", repo.Name, u)
			}
		}
	}
	for i, k := range keys {
		switch {
		case strings.HasPrefix(k, "http://") || strings.HasPrefix(k, "https://"):
		case path.IsAbs(k):
			data, err := r.ReadFile(strings.TrimPrefix(path.Clean(k), "/"))
			if err != nil {
				return fmt.Errorf("key %s: %w", k, err)
			}
			dst := filepath.Join(keyDir, fmt.Sprintf("script%d.asc", i))
			if err := os.WriteFile(dst, data, 0o600); err != nil {
				return err
			}
			k = dst
		default:
			return fmt.Errorf("key %s: want an http(s) URL or an absolute path in the container", k)
		}
		spec.Keys = append(spec.Keys, k)
	}
	spec.Repos = repos
	return nil
}
