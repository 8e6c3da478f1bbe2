package templatebuild

import (
	"reflect"
	"strings"
	"testing"

	"vzpkg2/internal/packager"
	"vzpkg2/internal/tmpl"
)

func TestNewSpecCarriesTheDefinition(t *testing.T) {
	def := &tmpl.Definition{
		Name: "rocky-9-x86_64-minimal", Arch: "x86_64", Packager: tmpl.PackagerDnf, Releasever: "9",
		Repos: []tmpl.Repo{{Name: "baseos", Mirrors: []string{"https://dl.rockylinux.org/pub/rocky/9/BaseOS/x86_64/os/"},
			Mirrorlist: "https://mirrors.rockylinux.org/mirrorlist?repo=BaseOS-9", Keys: []string{"https://k/1"}}},
		Keys:        []string{"https://dl.rockylinux.org/pub/rocky/RPM-GPG-KEY-Rocky-9"},
		Packages:    []string{"bash", "dnf"},
		Dummies:     []tmpl.Dummy{{Name: "kernel", Version: "99:1.0-vz1", Provides: []string{"kernel-core"}}},
		Hooks:       map[tmpl.Phase][]string{tmpl.PhaseCustomize: {"/hooks/motd.sh"}},
		PathExclude: []string{"/usr/share/doc/*"},
		WeakDeps:    true, NoDocs: true,
	}
	want := &packager.Spec{
		Name: "rocky-9-x86_64-minimal", Arch: "x86_64", ArchName: "x86_64", Releasever: "9",
		Repos: []packager.Repo{{Name: "baseos", Mirrors: []string{"https://dl.rockylinux.org/pub/rocky/9/BaseOS/x86_64/os/"},
			Mirrorlist: "https://mirrors.rockylinux.org/mirrorlist?repo=BaseOS-9", Keys: []string{"https://k/1"}}},
		Keys:        []string{"https://dl.rockylinux.org/pub/rocky/RPM-GPG-KEY-Rocky-9"},
		Packages:    []string{"bash", "dnf"},
		Dummies:     []packager.Dummy{{Name: "kernel", Version: "99:1.0-vz1", Provides: []string{"kernel-core"}}},
		Hooks:       map[string][]string{"customize": {"/hooks/motd.sh"}},
		PathExclude: []string{"/usr/share/doc/*"},
		WeakDeps:    true, NoDocs: true,
	}
	if got := newSpec(def); !reflect.DeepEqual(got, want) {
		t.Errorf("newSpec:\ngot  %+v\nwant %+v", got, want)
	}
}

func TestPackagersByName(t *testing.T) {
	r := Packagers()
	if got := strings.Join(r.Names(), " "); got != "apt dnf" {
		t.Errorf("registered packagers: %q, want apt dnf", got)
	}
	if _, err := r.Lookup("script"); err == nil || !strings.Contains(err.Error(), "apt, dnf") {
		t.Errorf("Lookup(script): %v, want an error naming the packagers there are", err)
	}
}
