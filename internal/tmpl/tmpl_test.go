package tmpl

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeTree writes files (path relative to the root → contents) into a new
// directory and returns it.
func writeTree(t testing.TB, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// relErr renders err with the temporary root removed from file names.
func relErr(root string, err error) string {
	if err == nil {
		return ""
	}
	return strings.ReplaceAll(err.Error(), root+string(filepath.Separator), "")
}

// algebraDistro is a distribution whose sets the cases below change per version.
const algebraDistro = `packager: script:test
sets:
  base:
    packages: [a]
  minimal:
    include: [base]
    packages: [b]
    dummies:
      - {name: udev, version: "1", provides: [udev-virtual]}
  web:
    include: [minimal]
    packages: [nginx, curl]
`

func TestSetAlgebra(t *testing.T) {
	tests := []struct {
		name     string
		version  string // config.yaml of x/11
		template string
		want     []string
		dummies  []string // name=version
	}{
		{
			name:     "include then add",
			template: "x-11-x86_64-web",
			want:     []string{"a", "b", "nginx", "curl"},
			dummies:  []string{"udev=1"},
		},
		{
			name:     "includes of includes",
			template: "x-11-x86_64-minimal",
			want:     []string{"a", "b"},
		},
		{
			name:     "a version removes what the distribution added",
			version:  "sets:\n  web:\n    packages:\n      remove: [curl]\n",
			template: "x-11-x86_64-web",
			want:     []string{"a", "b", "nginx"},
		},
		{
			name:     "removals come after includes",
			version:  "sets:\n  web:\n    packages:\n      remove: [a]\n",
			template: "x-11-x86_64-web",
			want:     []string{"b", "nginx", "curl"},
		},
		{
			name:     "a version's change to an included set reaches the includer",
			version:  "sets:\n  base:\n    packages: [z]\n",
			template: "x-11-x86_64-web",
			want:     []string{"a", "z", "b", "nginx", "curl"},
		},
		{
			name:     "reset drops inherited and included packages",
			version:  "sets:\n  web:\n    packages:\n      reset: true\n      add: [lighttpd]\n",
			template: "x-11-x86_64-web",
			want:     []string{"lighttpd"},
		},
		{
			name:     "reset then include again",
			version:  "sets:\n  web:\n    include: [base]\n    packages:\n      reset: true\n",
			template: "x-11-x86_64-web",
			want:     []string{"a"},
		},
		{
			name:     "adding a package already there keeps its place",
			version:  "sets:\n  web:\n    packages: [a, vim]\n",
			template: "x-11-x86_64-web",
			want:     []string{"a", "b", "nginx", "curl", "vim"},
		},
		{
			name:     "a new set at version level",
			version:  "sets:\n  db:\n    include: [web]\n    packages: [postgresql]\n",
			template: "x-11-x86_64-db",
			want:     []string{"a", "b", "nginx", "curl", "postgresql"},
		},
		{
			name:     "placeholders expand",
			version:  "suite: eleven\nsets:\n  web:\n    packages: ['tool-${suite}-${arch}']\n",
			template: "x-11-x86_64-web",
			want:     []string{"a", "b", "nginx", "curl", "tool-eleven-x86_64"},
		},
		{
			name:     "dummy redefined by name keeps its place",
			version:  "sets:\n  web:\n    dummies:\n      - {name: udev, version: \"2\"}\n      - {name: kernel, version: \"9\"}\n",
			template: "x-11-x86_64-web",
			want:     []string{"a", "b", "nginx", "curl"},
			dummies:  []string{"udev=2", "kernel=9"},
		},
		{
			name:     "dummy removed",
			version:  "sets:\n  web:\n    dummies:\n      remove: [udev]\n",
			template: "x-11-x86_64-web",
			want:     []string{"a", "b", "nginx", "curl"},
			dummies:  []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, map[string]string{
				"x/config.yaml":           algebraDistro,
				"x/10/x86_64/config.yaml": "",
				"x/11/config.yaml":        tt.version,
				"x/11/x86_64/config.yaml": "",
			})
			tree, err := Load([]string{root})
			if err != nil {
				t.Fatalf("Load: %s", relErr(root, err))
			}
			d, err := tree.Lookup(tt.template)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(d.Packages, tt.want) {
				t.Errorf("packages of %s: got %q, want %q", tt.template, d.Packages, tt.want)
			}
			if tt.dummies != nil {
				got := []string{}
				for _, dm := range d.Dummies {
					got = append(got, dm.Name+"="+dm.Version)
				}
				if !slices.Equal(got, tt.dummies) {
					t.Errorf("dummies of %s: got %q, want %q", tt.template, got, tt.dummies)
				}
			}
			// Version 10 has no changes: it always sees the distribution's sets.
			d10, err := tree.Lookup("x-10-x86_64-web")
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"a", "b", "nginx", "curl"}; !slices.Equal(d10.Packages, want) {
				t.Errorf("a change in version 11 leaked into version 10: got %q, want %q", d10.Packages, want)
			}
		})
	}
}

func TestSetProvenance(t *testing.T) {
	root := writeTree(t, map[string]string{
		"x/config.yaml":           algebraDistro,
		"x/11/config.yaml":        "sets:\n  web:\n    packages: [vim]\n",
		"x/11/x86_64/config.yaml": "",
	})
	tree, err := Load([]string{root})
	if err != nil {
		t.Fatal(relErr(root, err))
	}
	d, err := tree.Lookup("x-11-x86_64-web")
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"packages[a]":    "x/config.yaml:4",
		"packages[curl]": "x/config.yaml:12",
		"packages[vim]":  "x/11/config.yaml:3",
		"dummies[udev]":  "x/config.yaml:9",
		"packager":       "x/config.yaml:1",
	} {
		got := strings.TrimPrefix(d.Provenance[key].String(), root+string(filepath.Separator))
		if got != want {
			t.Errorf("provenance of %s: got %q, want %q", key, got, want)
		}
	}
}

// filterDistro is an apt distribution whose minimal set is slim; web and
// default include minimal.
const filterDistro = `packager: apt
suite: eleven
keys: [/usr/share/keyrings/x.gpg]
repos:
  x:
    mirrors: [http://example.org/x]
    suites: [eleven]
    components: [main]
sets:
  minimal:
    packages: [a]
    path_exclude: [/usr/share/doc/*, /usr/share/man/*]
    path_include: [/usr/share/doc/*/copyright]
  web:
    include: [minimal]
    packages: [nginx]
  default:
    include: [minimal]
`

func TestPathFilters(t *testing.T) {
	tests := []struct {
		name     string
		version  string // config.yaml of x/11
		template string
		exclude  []string
		include  []string
	}{
		{
			name:     "the set's own filters",
			template: "x-11-x86_64-minimal",
			exclude:  []string{"/usr/share/doc/*", "/usr/share/man/*"},
			include:  []string{"/usr/share/doc/*/copyright"},
		},
		{
			name:     "an include does not bring them",
			template: "x-11-x86_64-web",
		},
		{
			name:     "a version removes one",
			version:  "sets:\n  minimal:\n    path_exclude:\n      remove: [/usr/share/man/*]\n",
			template: "x-11-x86_64-minimal",
			exclude:  []string{"/usr/share/doc/*"},
			include:  []string{"/usr/share/doc/*/copyright"},
		},
		{
			name:     "a version adds to the set's own",
			version:  "sets:\n  minimal:\n    path_exclude: ['/usr/share/locale/*']\n    path_include: [/usr/share/locale/locale.alias]\n",
			template: "x-11-x86_64-minimal",
			exclude:  []string{"/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*"},
			include:  []string{"/usr/share/doc/*/copyright", "/usr/share/locale/locale.alias"},
		},
		{
			name:     "reset drops the inherited ones",
			version:  "sets:\n  minimal:\n    path_exclude: {reset: true, add: ['/usr/share/info/*']}\n    path_include: {reset: true}\n",
			template: "x-11-x86_64-minimal",
			exclude:  []string{"/usr/share/info/*"},
		},
		{
			name:     "placeholders expand",
			version:  "sets:\n  minimal:\n    path_exclude: ['/usr/share/${distro}/*']\n",
			template: "x-11-x86_64-minimal",
			exclude:  []string{"/usr/share/doc/*", "/usr/share/man/*", "/usr/share/x/*"},
			include:  []string{"/usr/share/doc/*/copyright"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, map[string]string{
				"x/config.yaml":           filterDistro,
				"x/11/config.yaml":        tt.version,
				"x/11/x86_64/config.yaml": "",
			})
			tree, err := Load([]string{root})
			if err != nil {
				t.Fatalf("Load: %s", relErr(root, err))
			}
			d, err := tree.Lookup(tt.template)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(d.PathExclude, tt.exclude) {
				t.Errorf("path_exclude of %s: got %q, want %q", tt.template, d.PathExclude, tt.exclude)
			}
			if !slices.Equal(d.PathInclude, tt.include) {
				t.Errorf("path_include of %s: got %q, want %q", tt.template, d.PathInclude, tt.include)
			}
		})
	}

	t.Run("provenance and show-config", func(t *testing.T) {
		root := writeTree(t, map[string]string{
			"x/config.yaml":           filterDistro,
			"x/11/config.yaml":        "sets:\n  minimal:\n    path_exclude: ['/usr/share/locale/*']\n",
			"x/11/x86_64/config.yaml": "",
		})
		tree, err := Load([]string{root})
		if err != nil {
			t.Fatal(relErr(root, err))
		}
		d, err := tree.Lookup("x-11-x86_64-minimal")
		if err != nil {
			t.Fatal(err)
		}
		for key, want := range map[string]string{
			"path_exclude[/usr/share/doc/*]":           "x/config.yaml:12",
			"path_exclude[/usr/share/locale/*]":        "x/11/config.yaml:3",
			"path_include[/usr/share/doc/*/copyright]": "x/config.yaml:13",
		} {
			if got := strings.TrimPrefix(d.Provenance[key].String(), root+string(filepath.Separator)); got != want {
				t.Errorf("provenance of %s: got %q, want %q", key, got, want)
			}
		}
		var out strings.Builder
		if _, err := d.WriteTo(&out); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"path_exclude:\n  - /usr/share/doc/*", "path_include:\n  - /usr/share/doc/*/copyright"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("show-config output lacks %q:\n%s", want, out.String())
			}
		}
		d, err = tree.Lookup("x-11-x86_64")
		if err != nil {
			t.Fatal(err)
		}
		out.Reset()
		if _, err := d.WriteTo(&out); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out.String(), "path_") {
			t.Errorf("show-config of a set without path filters prints them:\n%s", out.String())
		}
	})
}

func TestIncludeCycle(t *testing.T) {
	root := writeTree(t, map[string]string{
		"x/config.yaml": `packager: script:test
sets:
  default:
    include: [b]
  b:
    include: [c]
  c:
    include: [a]
  a:
    include: [b]
`,
		"x/1/x86_64/config.yaml":  "",
		"x/1/aarch64/config.yaml": "",
	})
	tree, err := Load([]string{root})
	want := `x/config.yaml:8: include cycle: a → b → c → a; remove one of these includes`
	if got := relErr(root, err); got != want {
		t.Errorf("got error\n%s\nwant\n%s", got, want)
	}
	for _, name := range []string{"x-1-x86_64", "x-1-aarch64-a", "x-1-x86_64-c"} {
		if _, err := tree.Lookup(name); err == nil || !strings.Contains(err.Error(), "include cycle: a → b → c → a") {
			t.Errorf("Lookup(%s): got %v, want the cycle error", name, err)
		}
	}
}

// validDistro is a complete distribution; each bad tree breaks one thing.
const validDistro = `packager: script:test
sets:
  default:
    packages: [a]
`

func TestBadTrees(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{
			name:  "unknown key",
			files: map[string]string{"x/config.yaml": "packager: script:test\nsets:\n  default:\n    pakages: [a]\n"},
			want:  `x/config.yaml:4: unknown key "pakages" in set default (did you mean "packages"?)`,
		},
		{
			name:  "unknown top-level key",
			files: map[string]string{"x/1/config.yaml": "suit: bookworm\n"},
			want:  `x/1/config.yaml:1: unknown key "suit" in config.yaml (did you mean "suite"?)`,
		},
		{
			name:  "wrong type",
			files: map[string]string{"x/1/config.yaml": "use_cacher: yes\n"},
			want:  `x/1/config.yaml:1: use_cacher: want true or false, got "yes"`,
		},
		{
			name:  "list where a string belongs",
			files: map[string]string{"x/1/config.yaml": "\n\nsuite: [bookworm]\n"},
			want:  `x/1/config.yaml:3: suite: want a string, got a list`,
		},
		{
			name:  "missing packager",
			files: map[string]string{"x/config.yaml": "sets:\n  default:\n    packages: [a]\n"},
			want:  "x/config.yaml:1: no packager set; add `packager: apt`, `packager: dnf` or `packager: script:NAME`",
		},
		{
			name:  "unknown packager",
			files: map[string]string{"x/config.yaml": "packager: zypper\nsets:\n  default: {}\n"},
			want:  `x/config.yaml:1: unknown packager "zypper" (use apt, dnf or script:NAME)`,
		},
		{
			name:  "include of an unknown set",
			files: map[string]string{"x/1/config.yaml": "sets:\n  web:\n    include: [minmal]\n"},
			want:  `x/1/config.yaml:3: set "web" includes unknown set "minmal" (known: default, web)`,
		},
		{
			name:  "include of a misspelt set",
			files: map[string]string{"x/1/config.yaml": "sets:\n  web:\n    include: [defualt]\n"},
			want:  `x/1/config.yaml:3: set "web" includes unknown set "defualt" (did you mean "default"?)`,
		},
		{
			name: "duplicate template name",
			files: map[string]string{
				"x-y/1/x86_64/config.yaml": "",
				"x-y/config.yaml":          validDistro,
				"x/y-1/x86_64/config.yaml": "",
			},
			want: `x/config.yaml:3: set "default" gives x/y-1/x86_64 the template name "x-y-1-x86_64", which x-y/1/x86_64 already has; rename a directory or the set`,
		},
		{
			name:  "unknown fixup",
			files: map[string]string{"x/1/config.yaml": "fixups: [machine-id-emtpy]\n"},
			want:  `x/1/config.yaml:1: unknown fixup "machine-id-emtpy" (did you mean "machine-id-empty"?)`,
		},
		{
			name:  "unknown bootstrap",
			files: map[string]string{"x/1/config.yaml": "bootstrap: debbootstrap\n"},
			want:  `x/1/config.yaml:1: unknown bootstrap "debbootstrap" (did you mean "debootstrap"?)`,
		},
		{
			name:  "fixup of another packager",
			files: map[string]string{"x/1/config.yaml": "fixups:\n  - apt-clean\n"},
			want:  `x/1/config.yaml:2: fixup "apt-clean" is for apt templates, this one uses script; remove it here`,
		},
		{
			name:  "removal of a package not in the set",
			files: map[string]string{"x/1/config.yaml": "sets:\n  default:\n    packages:\n      remove: [b]\n"},
			want:  `x/1/config.yaml:4: cannot remove "b": not in set "default" at this point; drop the removal`,
		},
		{
			name:  "path filters on a template of another packager",
			files: map[string]string{"x/1/config.yaml": "sets:\n  default:\n    path_exclude: [/usr/share/doc/*]\n"},
			want:  `x/1/config.yaml:3: path_exclude and path_include are dpkg path filters, for apt templates; this one uses script`,
		},
		{
			name:  "relative path pattern",
			files: map[string]string{"x/1/config.yaml": "sets:\n  default:\n    path_exclude: [usr/share/doc/*]\n"},
			want:  `x/1/config.yaml:3: "usr/share/doc/*": want an absolute path pattern without spaces or quotes (e.g. /usr/share/doc/*)`,
		},
		{
			name:  "removal of a path filter not there",
			files: map[string]string{"x/1/config.yaml": "sets:\n  default:\n    path_exclude:\n      remove: [/usr/share/man/*]\n"},
			want:  `x/1/config.yaml:4: cannot remove "/usr/share/man/*": not in path_exclude of set "default" at this point; drop the removal`,
		},
		{
			name: "path_include without path_exclude",
			files: map[string]string{
				"x/config.yaml":          filterDistro,
				"x/1/config.yaml":        "sets:\n  default:\n    path_include: [/usr/share/doc/*/copyright]\n",
				"x/1/x86_64/config.yaml": "",
			},
			want: `x/1/config.yaml:3: set "default" has path_include but no path_exclude, so it re-includes nothing; add path_exclude or drop path_include`,
		},
		{
			name:  "unknown placeholder",
			files: map[string]string{"x/1/config.yaml": "sets:\n  default:\n    packages: ['tool-${codename}']\n"},
			want:  `x/1/config.yaml:3: unknown placeholder ${codename} (known: arch, distro, releasever, suite, version)`,
		},
		{
			name:  "dnf-style variable",
			files: map[string]string{"x/1/config.yaml": "sets:\n  default:\n    packages: [tool-$basearch]\n"},
			want:  `x/1/config.yaml:3: "tool-$basearch": write placeholders as ${name} (known: ${arch}, ${distro}, ${releasever}, ${suite}, ${version}); vzpkg expands them itself`,
		},
		{
			name:  "unknown architecture directory",
			files: map[string]string{"x/1/amd64/config.yaml": ""},
			want:  `x/1/amd64: unknown architecture directory "amd64" (known: aarch64, i686, ppc64le, riscv64, s390x, x86_64)`,
		},
		{
			name:  "misnamed config file",
			files: map[string]string{"x/1/config.yml": "suite: bookworm\n"},
			want:  `x/1/config.yml: unexpected file; the settings of a level go in config.yaml`,
		},
		{
			name:  "invalid YAML",
			files: map[string]string{"x/1/config.yaml": "suite: bookworm\n  variant: minbase\n"},
			want:  `x/1/config.yaml:2: not valid YAML: mapping values are not allowed in this context`,
		},
		{
			name:  "key given twice",
			files: map[string]string{"x/1/config.yaml": "suite: a\nsuite: b\n"},
			want:  `x/1/config.yaml:2: config.yaml: key "suite" given twice (first on line 1)`,
		},
		{
			name:  "missing hook script",
			files: map[string]string{"x/1/config.yaml": "hooks:\n  customize: [_hooks/missing.sh]\n"},
			want:  `x/1/config.yaml:2: hook script "_hooks/missing.sh" not found (paths are relative to this file's directory)`,
		},
		{
			name: "same hook path naming two scripts at two levels",
			files: map[string]string{
				"x/config.yaml":   validDistro + "hooks:\n  final: [_hooks/a.sh]\n",
				"x/_hooks/a.sh":   "#!/bin/sh\n",
				"x/1/config.yaml": "hooks:\n  final: [_hooks/a.sh]\n",
				"x/1/_hooks/a.sh": "#!/bin/sh\n",
			},
			want: `x/1/config.yaml:2: hooks.final: "_hooks/a.sh" here is x/1/_hooks/a.sh, but the list already has "_hooks/a.sh" from x/config.yaml:6, which is x/_hooks/a.sh; give the scripts different names, or reset the list here (reset: true, add: [...])`,
		},
		{
			name:  "hook path leaving the tree",
			files: map[string]string{"x/1/config.yaml": "hooks:\n  final: [" + strings.Repeat("../", 30) + "bin/true]\n"},
			want:  `x/1/config.yaml:2: hook script "` + strings.Repeat("../", 30) + `bin/true" is outside the template tree; put it in the tree (e.g. in _hooks/) and give its path relative to this file's directory`,
		},
		{
			name:  "absolute hook path",
			files: map[string]string{"x/1/config.yaml": "hooks:\n  customize:\n    add: [/bin/true]\n"},
			want:  `x/1/config.yaml:3: hook script "/bin/true" is an absolute path; put it in the tree (e.g. in _hooks/) and give its path relative to this file's directory`,
		},
		{
			name:  "template name too long for a build's file names",
			files: map[string]string{"x/1/config.yaml": "sets:\n  " + strings.Repeat("s", 229) + ":\n    packages: [a]\n"},
			want:  `x/1/config.yaml:2: template name x-1-x86_64-sssssssssssssssssssssssssssss... is 240 bytes; at most 236 fit in the file names a build makes (NAME.tar.zst-old.sha256 in at most 255 bytes); shorten the set's or a directory's name`,
		},
		{
			name: "apt template without suite and repositories",
			files: map[string]string{"x/config.yaml": `packager: apt
keys: [/usr/share/keyrings/x.gpg]
sets:
  default:
    packages: [a]
`},
			want: "x/config.yaml:1: apt templates need a suite (the release codename, e.g. `suite: bookworm`) in the version's config.yaml\n" +
				"x/config.yaml:1: no repositories; add `repos:` with at least the distribution's main repository",
		},
		{
			name: "dnf repository with apt fields",
			files: map[string]string{"x/config.yaml": `packager: dnf
releasever: "9"
keys: [https://example.org/key]
repos:
  baseos:
    mirrors: [https://example.org/9/]
    suites: [nine]
sets:
  default:
    packages: [a]
`},
			want: `x/config.yaml:7: suites are for apt repositories; dnf uses mirrors, metalink or mirrorlist`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{
				"x/config.yaml":          validDistro,
				"x/1/x86_64/config.yaml": "",
			}
			for k, v := range tt.files {
				files[k] = v
			}
			root := writeTree(t, files)
			_, err := Load([]string{root})
			if got := relErr(root, err); got != tt.want {
				t.Errorf("got error\n%s\nwant\n%s", got, tt.want)
			}
			var e *Error
			if err != nil && !errors.As(err, &e) {
				t.Errorf("errors.As(*Error) failed on %v", err)
			}
		})
	}
}

func TestHooksResolveRelativeToTheirFile(t *testing.T) {
	root := writeTree(t, map[string]string{
		"x/config.yaml":          validDistro + "hooks:\n  customize: [_hooks/motd.sh]\n",
		"x/_hooks/motd.sh":       "#!/bin/sh\necho hi > \"$1/etc/motd\"\n",
		"x/1/x86_64/config.yaml": "",
	})
	tree, err := Load([]string{root})
	if err != nil {
		t.Fatal(relErr(root, err))
	}
	d, err := tree.Lookup("x-1-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(root, "x", "_hooks", "motd.sh")}
	if got := d.Hooks[PhaseCustomize]; !slices.Equal(got, want) {
		t.Errorf("customize hooks: got %q, want %q", got, want)
	}
}

func TestLocalRootOverridesShipped(t *testing.T) {
	shipped := writeTree(t, map[string]string{
		"x/config.yaml":          validDistro + "use_cacher: true\n",
		"x/1/config.yaml":        "suite: one\n",
		"x/1/x86_64/config.yaml": "",
	})
	local := writeTree(t, map[string]string{
		"x/config.yaml": "use_cacher: false\nsuite: local\nsets:\n  default:\n    packages: [site-tools]\n",
	})
	tree, err := Load([]string{local, shipped})
	if err != nil {
		t.Fatal(err)
	}
	d, err := tree.Lookup("x-1-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	if d.UseCacher {
		t.Errorf("use_cacher: got true, want the local override false")
	}
	// A more specific level wins over a higher-priority root's general level.
	if d.Suite != "one" {
		t.Errorf("suite: got %q, want %q from the shipped version directory", d.Suite, "one")
	}
	if want := []string{"a", "site-tools"}; !slices.Equal(d.Packages, want) {
		t.Errorf("packages: got %q, want %q", d.Packages, want)
	}
}

func TestLookup(t *testing.T) {
	root := writeTree(t, map[string]string{
		"x/config.yaml":          validDistro + "  minimal:\n    packages: [a]\n",
		"x/1/x86_64/config.yaml": "",
	})
	tree, err := Load([]string{root})
	if err != nil {
		t.Fatal(relErr(root, err))
	}
	tests := []struct {
		name, want, wantErr string
	}{
		{name: "x-1-x86_64", want: "x-1-x86_64"},
		{name: "x-1-x86_64-default", want: "x-1-x86_64"},
		{name: "x-1-x86_64-minimal", want: "x-1-x86_64-minimal"},
		{name: "x-1-x86_64-minmal", wantErr: "no template \"x-1-x86_64-minmal\" (did you mean \"x-1-x86_64-minimal\"?); `vzpkg list` shows every template"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := tree.Lookup(tt.name)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("got error %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Name != tt.want {
				t.Errorf("got %s, want %s", d.Name, tt.want)
			}
		})
	}
}

// TestWeakDepsAndNoDocs checks that weak_deps and nodocs default to false
// (no weak dependencies, documentation installed) and that each level, and
// a set's own declaration, overrides the ones above it, not its included sets'.
func TestWeakDepsAndNoDocs(t *testing.T) {
	root := writeTree(t, map[string]string{
		"x/config.yaml": "packager: script:test\nweak_deps: true\nsets:\n  default:\n    packages: [a]\n" +
			"  slim:\n    include: [default]\n    nodocs: true\n    weak_deps: false\n  web:\n    include: [slim]\n",
		"x/1/x86_64/config.yaml":  "",
		"x/2/config.yaml":         "nodocs: true\n",
		"x/2/x86_64/config.yaml":  "weak_deps: false\n",
		"x/2/aarch64/config.yaml": "sets:\n  slim:\n    nodocs: false\n",
		"y/config.yaml":           validDistro,
		"y/1/x86_64/config.yaml":  "",
	})
	tree, err := Load([]string{root})
	if err != nil {
		t.Fatal(relErr(root, err))
	}
	tests := []struct {
		name           string
		weak, nodocs   bool
		weakSrc, nodoc string // provenance, "" when not set
	}{
		{name: "y-1-x86_64"},
		{name: "x-1-x86_64", weak: true, weakSrc: "x/config.yaml:2"},
		{name: "x-1-x86_64-slim", nodocs: true, weakSrc: "x/config.yaml:9", nodoc: "x/config.yaml:8"},
		{name: "x-1-x86_64-web", weak: true, weakSrc: "x/config.yaml:2"},
		{name: "x-2-x86_64", nodocs: true, weakSrc: "x/2/x86_64/config.yaml:1", nodoc: "x/2/config.yaml:1"},
		{name: "x-2-aarch64", weak: true, nodocs: true, weakSrc: "x/config.yaml:2", nodoc: "x/2/config.yaml:1"},
		{name: "x-2-aarch64-slim", weakSrc: "x/config.yaml:9", nodoc: "x/2/aarch64/config.yaml:3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := tree.Lookup(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if d.WeakDeps != tt.weak || d.NoDocs != tt.nodocs {
				t.Errorf("weak_deps, nodocs: got %v, %v, want %v, %v", d.WeakDeps, d.NoDocs, tt.weak, tt.nodocs)
			}
			rel := func(key string) string {
				if src, ok := d.Provenance[key]; ok {
					return strings.TrimPrefix(src.String(), root+string(filepath.Separator))
				}
				return ""
			}
			if got := rel("weak_deps"); got != tt.weakSrc {
				t.Errorf("weak_deps set at %q, want %q", got, tt.weakSrc)
			}
			if got := rel("nodocs"); got != tt.nodoc {
				t.Errorf("nodocs set at %q, want %q", got, tt.nodoc)
			}
		})
	}
}

func TestBadWeakDepsAndNoDocs(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{
			name:  "not a bool",
			files: map[string]string{"x/config.yaml": validDistro + "weak_deps: yes\n", "x/1/x86_64/config.yaml": ""},
			want:  `x/config.yaml:5: weak_deps: want true or false, got "yes"`,
		},
		{
			name:  "misspelt in a set",
			files: map[string]string{"x/config.yaml": validDistro + "    nodoc: true\n", "x/1/x86_64/config.yaml": ""},
			want:  `x/config.yaml:5: unknown key "nodoc" in set default (did you mean "nodocs"?)`,
		},
		{
			name: "nodocs on apt",
			files: map[string]string{
				"x/config.yaml":          "packager: apt\nsuite: one\nkeys: [/k.gpg]\nrepos:\n  main: {mirrors: [\"http://m/\"], suites: [one], components: [main]}\nsets:\n  default:\n    packages: [a]\n    nodocs: true\n",
				"x/1/x86_64/config.yaml": "",
			},
			want: `x/config.yaml:9: nodocs is for dnf templates`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, tt.files)
			_, err := Load([]string{root})
			if got := relErr(root, err); !strings.Contains(got, tt.want) {
				t.Errorf("got %q, want it to contain %q", got, tt.want)
			}
		})
	}
}
