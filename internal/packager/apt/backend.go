package apt

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"vzpkg2/internal/dummy"
	"vzpkg2/internal/packager"
	"vzpkg2/internal/rootfs"
	"vzpkg2/internal/tmpl"
)

// Backend is the apt packager behind the packager contract: it runs Apt's
// bootstrap, update and repository configuration for a Spec, and apt-get in
// a chroot of the root for the other operations. The zero value is ready to
// use.
type Backend struct{}

var _ packager.Packager = Backend{}

// definition is the part of a template definition Apt works from.
func definition(s *packager.Spec) *tmpl.Definition {
	def := &tmpl.Definition{
		Name: s.Name, Arch: s.Arch, ArchName: s.ArchName, Packager: tmpl.PackagerApt,
		Suite: s.Suite, Variant: s.Variant, Bootstrap: s.Bootstrap,
		Keys: s.Keys, Packages: s.Packages, PathExclude: s.PathExclude, PathInclude: s.PathInclude,
		WeakDeps: s.WeakDeps,
	}
	for _, r := range s.Repos {
		def.Repos = append(def.Repos, tmpl.Repo{Name: r.Name, Mirrors: r.Mirrors, Suites: r.Suites, Components: r.Components, Keys: r.Keys})
	}
	for _, d := range s.Dummies {
		def.Dummies = append(def.Dummies, tmpl.Dummy{Name: d.Name, Version: d.Version, Provides: d.Provides})
	}
	if len(s.Hooks) > 0 {
		def.Hooks = map[tmpl.Phase][]string{}
		for ph, hs := range s.Hooks {
			def.Hooks[tmpl.Phase(ph)] = hs
		}
	}
	return def
}

// Bootstrap runs Apt.Bootstrap.
func (Backend) Bootstrap(ctx context.Context, root string, spec *packager.Spec, env packager.Env) error {
	return Apt{}.Bootstrap(ctx, root, definition(spec), env)
}

// Install runs apt-get install for pkgs in a chroot of root, prepared as
// Apt.Update prepares it. apt-get resolves the whole request before it
// changes anything: an unknown package fails it with the root unchanged.
func (a Backend) Install(ctx context.Context, root string, spec *packager.Spec, env packager.Env, pkgs []string) error {
	return Apt{}.chrootRun(ctx, root, definition(spec), env, func(apt, _ []string) error {
		for _, step := range [][]string{{"update"}, append([]string{"install"}, pkgs...)} {
			if err := runCmd(ctx, env, rootfs.Command(ctx, root, aptEnv, append(apt, step...)...)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Remove runs apt-get remove for pkgs in a chroot of root. A package that is
// not installed is an error (apt-get would only say so).
func (a Backend) Remove(ctx context.Context, root string, spec *packager.Spec, env packager.Env, pkgs []string) error {
	if err := requireInstalled(ctx, a, root, pkgs); err != nil {
		return err
	}
	return Apt{}.chrootRun(ctx, root, definition(spec), env, func(apt, _ []string) error {
		return runCmd(ctx, env, rootfs.Command(ctx, root, aptEnv, append(append(apt, "remove"), pkgs...)...))
	})
}

// requireInstalled fails unless every one of pkgs is installed in root.
func requireInstalled(ctx context.Context, p packager.Packager, root string, pkgs []string) error {
	installed, err := p.Query(ctx, root)
	if err != nil {
		return err
	}
	for _, name := range pkgs {
		if !slices.ContainsFunc(installed, func(q packager.Package) bool { return q.Name == name }) {
			return fmt.Errorf("%s is not installed in %s", name, root)
		}
	}
	return nil
}

// Update runs Apt.Update when pkgs is empty; otherwise it upgrades only
// pkgs (apt-get install --only-upgrade) before installing what the set
// lacks.
func (a Backend) Update(ctx context.Context, root string, spec *packager.Spec, env packager.Env, pkgs []string) (bool, error) {
	before, err := a.Query(ctx, root)
	if err != nil {
		return false, err
	}
	if len(pkgs) == 0 {
		err = Apt{}.Update(ctx, root, definition(spec), env)
	} else {
		err = Apt{}.chrootRun(ctx, root, definition(spec), env, func(apt, install []string) error {
			for _, step := range [][]string{{"update"}, append([]string{"install", "--only-upgrade"}, pkgs...), append([]string{"install"}, install...)} {
				if step[0] == "install" && len(step) == 1 {
					continue
				}
				if err := runCmd(ctx, env, rootfs.Command(ctx, root, aptEnv, append(apt, step...)...)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		return false, err
	}
	after, err := a.Query(ctx, root)
	if err != nil {
		return false, err
	}
	return !slices.Equal(before, after), nil
}

// Query runs Apt.Query.
func (Backend) Query(ctx context.Context, root string) ([]packager.Package, error) {
	return Apt{}.Query(ctx, root)
}

// CheckUpdates runs apt-get update and a simulated dist-upgrade in a chroot
// of root, and lists the packages it would upgrade ("Inst NAME [OLD] (NEW
// ...").
func (Backend) CheckUpdates(ctx context.Context, root string, spec *packager.Spec, env packager.Env) ([]packager.Package, error) {
	var sim bytes.Buffer
	quiet := env
	quiet.Output = nil
	err := Apt{}.chrootRun(ctx, root, definition(spec), env, func(apt, _ []string) error {
		if err := runCmd(ctx, quiet, rootfs.Command(ctx, root, aptEnv, append(apt, "update")...)); err != nil {
			return err
		}
		cmd := rootfs.Command(ctx, root, aptEnv, append(apt, "-s", "dist-upgrade")...)
		capture := quiet
		capture.Output = &sim
		return runCmd(ctx, capture, cmd)
	})
	if err != nil {
		return nil, err
	}
	var ups []packager.Package
	sc := bufio.NewScanner(&sim)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// Inst hello [2.10-2] (2.10-3 Debian:12/stable [amd64])
		if len(f) < 4 || f[0] != "Inst" || !strings.HasPrefix(f[2], "[") {
			continue
		}
		arch := strings.Trim(f[len(f)-1], "[]()")
		ups = append(ups, packager.Package{Name: f[1], Version: strings.TrimPrefix(f[3], "("), Arch: arch})
	}
	packager.SortPackages(ups)
	return ups, nil
}

// ConfigureRepos runs Apt.ConfigureRepos.
func (Backend) ConfigureRepos(_ context.Context, root string, spec *packager.Spec, cacher *url.URL) error {
	return Apt{}.ConfigureRepos(root, definition(spec), cacher)
}

// Dummy builds a dummy .deb.
func (Backend) Dummy(ctx context.Context, dir string, _ *packager.Spec, d packager.Dummy) (string, error) {
	return dummy.Deb(ctx, dir, tmpl.Dummy{Name: d.Name, Version: d.Version, Provides: d.Provides})
}
