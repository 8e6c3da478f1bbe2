package templatebuild

import (
	"os"
	"path/filepath"
	"reflect"
	"runtime"
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
	if got := strings.Join(r.Names(), " "); got != "apt dnf script:NAME" {
		t.Errorf("registered packagers: %q, want apt dnf script:NAME", got)
	}
	if _, err := r.Lookup("zypper"); err == nil || !strings.Contains(err.Error(), "apt, dnf, script:NAME") {
		t.Errorf("Lookup(zypper): %v, want an error naming the packagers there are", err)
	}
}

// TestScriptPackagerFromTree builds the backend of a `packager:
// script:NAME` template: its executables are the tree's _packagers ones,
// and a name with none says where it looked.
func TestScriptPackagerFromTree(t *testing.T) {
	root := t.TempDir()
	for name, data := range map[string]string{
		"x/config.yaml":           "packager: script:vztest\nsets:\n  default:\n    packages: [a]\n",
		"x/1/x86_64/config.yaml":  "",
		"_packagers/vztest-query": "#!/bin/sh\nprintf 'a\\t1.0\\tx86_64\\n'\n",
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tree, err := tmpl.Load([]string{root})
	if err != nil {
		t.Fatal(err)
	}
	def, err := tree.Lookup("x-1-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := packagerFor(def)
	if err != nil {
		t.Fatalf("packagerFor(script:vztest): %v", err)
	}
	got, err := sp.Query(t.Context(), t.TempDir())
	if want := []packager.Package{{Name: "a", Version: "1.0", Arch: "x86_64"}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Query through the tree's vztest-query: %v, %v; want %v", got, err, want)
	}

	def.ScriptPackager = "nosuch"
	_, err = packagerFor(def)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(root, "_packagers")) || !strings.Contains(err.Error(), "/usr/lib/vzpkg/packagers") {
		t.Errorf("packagerFor(script:nosuch): %v, want an error naming the directories searched", err)
	}
}

// TestForeignArchNeedsQemu builds aarch64 templates, apt and dnf, on an
// x86_64 host without qemu-user-static's binfmt handler: the build must
// stop before it fetches anything, name the package to install, and leave
// nothing in the cache directory.
func TestForeignArchNeedsQemu(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("skipped: the host is %s, not x86_64", runtime.GOARCH)
	}
	if _, err := os.Stat("/proc/sys/fs/binfmt_misc/qemu-aarch64"); err == nil {
		t.Skip("skipped: qemu-user-static's aarch64 handler is registered here")
	}
	// Mirrors nothing listens on: a build that went on would fail
	// differently.
	for _, def := range []*tmpl.Definition{
		{Name: "debian-13-aarch64-minimal", Arch: "aarch64", ArchName: "arm64", Packager: tmpl.PackagerApt, Suite: "trixie", Variant: "minbase",
			Repos:    []tmpl.Repo{{Name: "debian", Mirrors: []string{"http://127.0.0.1:9/debian"}, Suites: []string{"trixie"}, Components: []string{"main"}}},
			Packages: []string{"iproute2"}},
		{Name: "almalinux-9-aarch64-minimal", Arch: "aarch64", Packager: tmpl.PackagerDnf, Releasever: "9",
			Repos: []tmpl.Repo{{Name: "baseos", Mirrors: []string{"http://127.0.0.1:9/9/BaseOS/aarch64/os/"}}},
			Keys:  []string{"http://127.0.0.1:9/k"}, Packages: []string{"bash"}},
	} {
		t.Run(def.Packager, func(t *testing.T) {
			dir := t.TempDir()
			_, err := Create(t.Context(), def, Options{CacheDir: dir, NoWait: true})
			if err == nil || !strings.Contains(err.Error(), "install qemu-user-static") || !strings.Contains(err.Error(), def.Name) {
				t.Errorf("Create: %v, want an error naming %s and qemu-user-static", err, def.Name)
			}
			left, _ := os.ReadDir(dir)
			for _, e := range left {
				if !strings.HasSuffix(e.Name(), ".lock") {
					t.Errorf("the refused build left %s in the cache directory", e.Name())
				}
			}
		})
	}
}
