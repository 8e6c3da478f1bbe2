package apt

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"vzpkg2/internal/tmpl"
)

func TestGlobRegexp(t *testing.T) {
	tests := []struct {
		glob, name string
		want       bool
	}{
		{"/usr/share/doc/*", "/usr/share/doc/apt/changelog.gz", true}, // '*' crosses '/'
		{"/usr/share/doc/*", "/usr/share/doc", false},
		{"/usr/share/doc/*", "/usr/share/doc/", true},
		{"/usr/share/doc/*/copyright", "/usr/share/doc/apt/copyright", true},
		{"/usr/share/doc/*/copyright", "/usr/share/doc/apt/copyright.gz", false},
		{"/usr/share/doc/*/copyright", "/usr/share/doc/a/b/copyright", true},
		{"/usr/share/man/man?/*", "/usr/share/man/man1/ls.1.gz", true},
		{"/usr/share/man/man?/*", "/usr/share/man/man/ls.1.gz", false},
		{"/usr/share/man/man[1-9]/*", "/usr/share/man/man8/x.8.gz", true},
		{"/usr/share/man/man[!1-7]/*", "/usr/share/man/man8/x.8.gz", true},
		{"/usr/share/man/man[^1-8]/*", "/usr/share/man/man8/x.8.gz", false},
		{"/usr/share/locale/*/LC_MESSAGES/*.mo", "/usr/share/locale/de/LC_MESSAGES/apt.mo", true},
		{"/usr/share/locale/*.mo", "/usr/share/locale/de/.hidden.mo", true}, // no FNM_PERIOD
		{"/a/[]]", "/a/]", true},
		{"/a/[!]]", "/a/x", true},
		{"/a/[[:digit:]]", "/a/7", true},
		{"/a/[[:digit:]]", "/a/x", false},
		{"/a/\\*", "/a/*", true},
		{"/a/\\*", "/a/b", false},
		{"/a/[", "/a/[", true}, // an unclosed '[' is itself
		{"/a.b/(c)+", "/a.b/(c)+", true},
		{"/a.b/(c)+", "/axb/(c)+", false},
		{"/ünï/*", "/ünï/x", true},
	}
	for _, tt := range tests {
		f, err := pathFilters(&tmpl.Definition{PathExclude: []string{tt.glob}})
		if err != nil {
			t.Errorf("%q: %v", tt.glob, err)
			continue
		}
		if got := f[0].re.MatchString(tt.name); got != tt.want {
			t.Errorf("%q matches %q: got %v, want %v (regexp %s)", tt.glob, tt.name, got, tt.want, f[0].re)
		}
	}
}

// slimDef has the path filters of the shipped minimal templates.
var slimDef = &tmpl.Definition{
	PathExclude: []string{"/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*"},
	PathInclude: []string{"/usr/share/doc/*/copyright", "/usr/share/locale/locale.alias"},
}

// TestPruneLeavesWhatDpkgInstalls builds a package with dpkg-deb, installs it
// with dpkg and the path filters (as root), and checks that unpacking it
// whole and pruning leaves the very same tree.
func TestPruneLeavesWhatDpkgInstalls(t *testing.T) {
	src := t.TempDir()
	files := map[string]string{
		"usr/bin/tool":                                 "#!/bin/sh\n",
		"usr/share/doc/tool/copyright":                 "GPL\n",
		"usr/share/doc/tool/changelog.Debian.gz":       "x",
		"usr/share/doc/tool/examples/example.conf":     "x",
		"usr/share/man/man1/tool.1.gz":                 "x",
		"usr/share/man/de/man1/tool.1.gz":              "x",
		"usr/share/info/tool.info.gz":                  "x",
		"usr/share/locale/de/LC_MESSAGES/tool.mo":      "x",
		"usr/share/locale/locale.alias":                "x",
		"usr/share/tool/data":                          "x",
		"usr/share/lintian/overrides/tool":             "x",
		"usr/share/doc-base/tool":                      "x",
		"usr/share/doc/libtool0/copyright":             "GPL\n",
		"usr/share/doc/libtool0/NEWS.gz":               "x",
		"usr/share/doc/tool/README.Debian":             "x",
		"usr/share/doc/tool/examples/sub/deeper/x.txt": "x",
	}
	for name, body := range files {
		p := filepath.Join(src, name)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(body), 0o644))
	}
	for link, target := range map[string]string{
		"usr/share/doc/tool-extra":           "tool", // a doc directory pointing at another
		"usr/share/doc/tool/changelog.gz":    "changelog.Debian.gz",
		"usr/share/man/man1/tool-alias.1.gz": "tool.1.gz",
		"usr/bin/tool-alias":                 "tool",
	} {
		must(t, os.Symlink(target, filepath.Join(src, link)))
	}
	must(t, os.MkdirAll(filepath.Join(src, "DEBIAN"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "DEBIAN/control"), []byte("Package: tool\nVersion: 1\nArchitecture: all\nMaintainer: vzpkg <vzpkg@example.org>\nDescription: test\n"), 0o644))
	deb := filepath.Join(t.TempDir(), "tool.deb")
	command(t, "dpkg-deb", "--root-owner-group", "-b", src, deb)

	filters, err := pathFilters(slimDef)
	if err != nil {
		t.Fatal(err)
	}
	// dpkg --root reads the host's configuration, not the root's: the filters go on the command line.
	installed := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		must(t, os.MkdirAll(filepath.Join(installed, d), 0o755))
	}
	must(t, os.WriteFile(filepath.Join(installed, "var/lib/dpkg/status"), nil, 0o644))
	args := []string{"--root=" + installed, "--log=/dev/null", "--force-not-root", "--force-script-chrootless"}
	for _, f := range filters {
		if f.include {
			args = append(args, "--path-include="+f.pattern)
		} else {
			args = append(args, "--path-exclude="+f.pattern)
		}
	}
	command(t, "dpkg", append(args, "--install", deb)...)

	pruned := t.TempDir()
	command(t, "dpkg-deb", "-x", deb, pruned)
	if err := prune(pruned, filters); err != nil {
		t.Fatal(err)
	}
	want, got := listTree(t, filepath.Join(installed, "usr")), listTree(t, filepath.Join(pruned, "usr"))
	if !slices.Equal(got, want) {
		t.Errorf("after prune:\n  %s\ndpkg installed:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	for _, keep := range []string{"/share/doc/tool/copyright", "/share/locale/locale.alias", "/bin/tool"} {
		if !slices.Contains(got, keep) {
			t.Errorf("prune removed %s", keep)
		}
	}
	for _, gone := range []string{"/share/man/man1/tool.1.gz", "/share/doc/tool/changelog.Debian.gz", "/share/locale/de"} {
		if slices.Contains(got, gone) {
			t.Errorf("prune kept %s", gone)
		}
	}
}

func TestWriteExcludes(t *testing.T) {
	root := t.TempDir()
	filters, err := pathFilters(slimDef)
	if err != nil {
		t.Fatal(err)
	}
	must(t, writeExcludes(root, filters))
	data, err := os.ReadFile(filepath.Join(root, excludesFile))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	want := []string{
		"path-exclude=/usr/share/doc/*", "path-exclude=/usr/share/man/*", "path-exclude=/usr/share/info/*",
		"path-exclude=/usr/share/locale/*", "path-include=/usr/share/doc/*/copyright", "path-include=/usr/share/locale/locale.alias",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("excludes file:\n%s\nwant the lines %q", data, want)
	}
	// dpkg reads the file as its configuration.
	out, err := exec.Command("dpkg", "--admindir="+root, "--debug=0", "--audit").CombinedOutput()
	if err != nil {
		t.Errorf("dpkg --audit with the file in place: %v\n%s", err, out)
	}

	// A definition without filters removes vzpkg's file, never another one.
	must(t, writeExcludes(root, nil))
	if _, err := os.Stat(filepath.Join(root, excludesFile)); err == nil {
		t.Error("writeExcludes(nil) kept vzpkg's excludes file")
	}
	must(t, os.WriteFile(filepath.Join(root, excludesFile), []byte("path-exclude=/usr/share/doc/*\n"), 0o644))
	must(t, writeExcludes(root, nil))
	if _, err := os.Stat(filepath.Join(root, excludesFile)); err != nil {
		t.Error("writeExcludes(nil) removed an excludes file vzpkg did not write")
	}
}

// listTree lists the paths under dir with a suffix for directories ("/") and
// symbolic links ("-> target").
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		name := strings.TrimPrefix(p, dir)
		switch {
		case d.IsDir():
			name += "/"
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			name += " -> " + target
		}
		out = append(out, name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func command(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
