package templatebuild

import (
	"context"
	"net/url"
	"slices"

	"vzpkg2/internal/packager"
	"vzpkg2/internal/packager/apt"
	"vzpkg2/internal/packager/dnf"
	"vzpkg2/internal/packager/script"
	"vzpkg2/internal/tmpl"
)

// Packagers returns the registry of the package-manager backends vzpkg
// has: a template's `packager:` names one. A script packager
// ("script:NAME") is looked for in scriptDirs, then in script.SystemDir.
func Packagers(scriptDirs ...string) *packager.Registry {
	return packager.NewRegistry(map[string]packager.Packager{
		tmpl.PackagerApt: apt.Backend{},
		tmpl.PackagerDnf: dnf.Dnf{},
	}, map[string]packager.Family{
		tmpl.PackagerScript: script.Family(append(slices.Clone(scriptDirs), script.SystemDir)),
	})
}

// packagerFor returns the backend of a definition, ready for a build.
func packagerFor(def *tmpl.Definition) (specPackager, error) {
	name := def.Packager
	if name == tmpl.PackagerScript {
		name += ":" + def.ScriptPackager
	}
	p, err := Packagers(def.ScriptDirs...).Lookup(name)
	if err != nil {
		return specPackager{}, err
	}
	return specPackager{p: p, name: name, spec: newSpec(def)}, nil
}

// newSpec describes the template def for a backend.
func newSpec(def *tmpl.Definition) *packager.Spec {
	s := &packager.Spec{
		Name: def.Name, Arch: def.Arch, ArchName: def.ArchName,
		Suite: def.Suite, Releasever: def.Releasever, Variant: def.Variant, Bootstrap: def.Bootstrap,
		Keys: slices.Clone(def.Keys), Packages: slices.Clone(def.Packages),
		WeakDeps: def.WeakDeps, NoDocs: def.NoDocs,
		PathExclude: slices.Clone(def.PathExclude), PathInclude: slices.Clone(def.PathInclude),
	}
	if s.ArchName == "" {
		s.ArchName = s.Arch
	}
	for _, r := range def.Repos {
		s.Repos = append(s.Repos, packager.Repo{Name: r.Name, Mirrors: slices.Clone(r.Mirrors), Suites: slices.Clone(r.Suites),
			Components: slices.Clone(r.Components), Metalink: r.Metalink, Mirrorlist: r.Mirrorlist, Keys: slices.Clone(r.Keys)})
	}
	for _, d := range def.Dummies {
		s.Dummies = append(s.Dummies, packager.Dummy{Name: d.Name, Version: d.Version, Provides: slices.Clone(d.Provides)})
	}
	if len(def.Hooks) > 0 {
		s.Hooks = map[string][]string{}
		for ph, hs := range def.Hooks {
			s.Hooks[string(ph)] = slices.Clone(hs)
		}
	}
	return s
}

// specPackager is a backend with the Spec of the definition being built:
// the build's steps call it with the definition, it hands the backend the
// Spec.
type specPackager struct {
	p    packager.Packager
	name string // the registry's name of p: "apt", "dnf", "script:NAME"
	spec *packager.Spec
}

func (s specPackager) Bootstrap(ctx context.Context, root string, _ *tmpl.Definition, env packager.Env) error {
	return s.p.Bootstrap(ctx, root, s.spec, env)
}

// Update upgrades every package and installs what the set lacks.
func (s specPackager) Update(ctx context.Context, root string, _ *tmpl.Definition, env packager.Env) error {
	_, err := s.p.Update(ctx, root, s.spec, env, nil)
	return err
}

func (s specPackager) Query(ctx context.Context, root string) ([]packager.Package, error) {
	return s.p.Query(ctx, root)
}

func (s specPackager) ConfigureRepos(root string, _ *tmpl.Definition, cacher *url.URL) error {
	return s.p.ConfigureRepos(context.Background(), root, s.spec, cacher)
}

func (s specPackager) Dummy(ctx context.Context, dir string, d tmpl.Dummy) (string, error) {
	return s.p.Dummy(ctx, dir, s.spec, packager.Dummy{Name: d.Name, Version: d.Version, Provides: d.Provides})
}
