package vzpkgcli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// vzpkgBinary builds vzpkg once for the tests that run it as a program and
// returns its path; TestMain removes it.
func vzpkgBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "vzpkgcli-bin-")
		if binErr != nil {
			return
		}
		if out, err := exec.Command("go", "build", "-o", binDir, "vzpkg2/cmd/vzpkg").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return filepath.Join(binDir, "vzpkg")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// TestTemplateNamesComplete asks vzpkg's completion command what follows
// `vzpkg create cache deb`: the Debian templates of the tree.
func TestTemplateNamesComplete(t *testing.T) {
	built := t.TempDir()
	if err := os.WriteFile(filepath.Join(built, "rocky-9-x86_64-minimal.tar.zst"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want []string // among the offers
		not  []string // not among them
	}{
		{[]string{"create", "cache", "deb"}, []string{"debian-12-x86_64-minimal", "debian-12-aarch64"}, []string{"ubuntu-24.04-x86_64"}},
		{[]string{"create", "cache", "debian-12-x86_64-minimal", "debian-12-x86_64"}, []string{"debian-12-x86_64"}, []string{"debian-12-x86_64-minimal"}},
		{[]string{"update", "cache", "--cache-dir", built, "rocky-9"}, []string{"rocky-9-x86_64-minimal"}, []string{"rocky-9-x86_64"}},
		{[]string{"remove", "cache", "--cache-dir", built, ""}, []string{"rocky-9-x86_64-minimal"}, []string{"debian-12-x86_64"}},
		{[]string{"show-config", "ubuntu-24"}, []string{"ubuntu-24.04-aarch64"}, nil},
		{[]string{"show-config", "debian-12-x86_64", ""}, nil, []string{"debian-12-x86_64"}},
		{[]string{"create", "cache", "--format", ""}, []string{"gz", "xz", "zst"}, nil},
	} {
		t.Run(strings.ReplaceAll(strings.Join(tc.args, " "), built, "DIR"), func(t *testing.T) {
			out, _, err := run(t, nil, append([]string{"__complete", "--templates", shippedTree}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			offers := strings.Split(strings.TrimSpace(out), "\n")
			offers = offers[:len(offers)-1] // the directive
			for _, w := range tc.want {
				if !slices.Contains(offers, w) {
					t.Errorf("%q not offered; got %q", w, offers)
				}
			}
			for _, n := range tc.not {
				if slices.Contains(offers, n) {
					t.Errorf("%q offered; got %q", n, offers)
				}
			}
		})
	}
}

// TestBashCompletion sources the shipped bash completion and completes
// `vzpkg create cache deb<TAB>` as bash would, with the vzpkg program on
// PATH answering. The script needs the bash-completion package, as the
// cobra-generated ones do.
func TestBashCompletion(t *testing.T) {
	bin := vzpkgBinary(t)
	script := `source /usr/share/bash-completion/bash_completion
source ../../etc/completions/bash/vzpkg
complete -p vzpkg
compopt() { :; } # outside a real completion, the builtin refuses to run
COMP_LINE="vzpkg --templates ` + shippedTree + ` create cache deb"
COMP_POINT=${#COMP_LINE}
COMP_WORDS=(vzpkg --templates ` + shippedTree + ` create cache deb)
COMP_CWORD=5
COMP_TYPE=9
__start_vzpkg vzpkg deb cache
printf 'reply %s\n' "${COMPREPLY[@]}"
`
	cmd := exec.Command("bash", "--norc", "--noprofile", "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	lines := strings.Split(string(out), "\n")
	if !strings.HasPrefix(lines[0], "complete ") || !strings.HasSuffix(lines[0], " vzpkg") {
		t.Errorf("complete -p vzpkg printed %q", lines[0])
	}
	var replies []string
	for _, l := range lines {
		if r, ok := strings.CutPrefix(l, "reply "); ok {
			replies = append(replies, strings.TrimSpace(r))
		}
	}
	if !slices.Contains(replies, "debian-12-x86_64-minimal") || slices.ContainsFunc(replies, func(r string) bool { return !strings.HasPrefix(r, "debian-") }) {
		t.Errorf("bash offered %q, want the Debian templates", replies)
	}
}
