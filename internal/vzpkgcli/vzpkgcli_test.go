package vzpkgcli

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"vzpkg2/internal/completion"
	"vzpkg2/internal/manpage"
)

var update = flag.Bool("update", false, "rewrite docs/man/vzpkg*.8 and etc/completions/*/*vzpkg* from the command tree")

const shippedTree = "../../templates"

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// run executes vzpkg with args and returns what it printed.
func run(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := New(Env{
		Getenv:     func(k string) string { return env[k] },
		Executable: func() (string, error) { return "/nonexistent/bin/vzpkg", nil },
		Now:        func() time.Time { return now },
	})
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err = cmd.Execute()
	return out.String(), errOut.String(), err
}

// writeConfig writes a vzpkg.conf with the given body and returns its path.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "vzpkg.conf")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestListShippedTree(t *testing.T) {
	cacheDir := t.TempDir()
	built := filepath.Join(cacheDir, "debian-12-x86_64-minimal.tar.zst")
	f, err := os.Create(built)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(5 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(built, now.Add(-75*time.Hour), now.Add(-75*time.Hour)); err != nil {
		t.Fatal(err)
	}
	conf := writeConfig(t, "cache_dir = "+cacheDir+"\n")

	out, stderr, err := run(t, nil, "list", "--config", conf, "--templates", shippedTree)
	if err != nil {
		t.Fatalf("vzpkg list: %v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if got := len(lines) - 1; got < 40 {
		t.Errorf("vzpkg list shows %d templates, want at least 40:\n%s", got, out)
	}
	if h := strings.Fields(lines[0]); strings.Join(h, " ") != "NAME PACKAGER CACHED AGE SIZE" {
		t.Errorf("header: got %q", lines[0])
	}
	rows := map[string][]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		rows[f[0]] = f[1:]
	}
	for name, want := range map[string]string{
		"debian-12-x86_64-minimal":  "apt yes 3d 5.0M",
		"debian-12-x86_64":          "apt no - -",
		"almalinux-9-aarch64":       "dnf no - -",
		"ubuntu-26.04-x86_64":       "apt no - -",
		"fedora-44-aarch64-minimal": "dnf no - -",
		"centos-stream-10-x86_64":   "dnf no - -",
		"rocky-8-x86_64-minimal":    "dnf no - -",
	} {
		if got := strings.Join(rows[name], " "); got != want {
			t.Errorf("row %s: got %q, want %q", name, got, want)
		}
	}
}

func TestCheckShippedTree(t *testing.T) {
	out, stderr, err := run(t, nil, "check", "--templates", shippedTree)
	if err != nil {
		t.Fatalf("vzpkg check on the shipped tree: %v\n%s", err, stderr)
	}
	if !regexp.MustCompile(`^\d+ templates in \.\./\.\./templates: OK\n$`).MatchString(out) {
		t.Errorf("got %q, want \"N templates in ../../templates: OK\"", out)
	}
}

func TestCheckReportsEveryProblem(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"x/config.yaml":          "packager: script:test\npakages: [a]\nsets:\n  default:\n    include: [minimal]\n",
		"x/1/config.yaml":        "use_cacher: yes\n",
		"x/1/x86_64/config.yaml": "",
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, stderr, err := run(t, nil, "check", "--templates", root)
	if err == nil || err.Error() != "3 problems in the template tree" {
		t.Errorf("got error %v, want \"3 problems in the template tree\"", err)
	}
	want := root + `/x/1/config.yaml:1: use_cacher: want true or false, got "yes"
` + root + `/x/config.yaml:2: unknown key "pakages" in config.yaml (did you mean "packager"?)
` + root + `/x/config.yaml:5: set "default" includes unknown set "minimal" (known: default)
`
	if stderr != want {
		t.Errorf("got\n%s\nwant\n%s", stderr, want)
	}
}

func TestShowConfig(t *testing.T) {
	out, _, err := run(t, nil, "show-config", "--templates", shippedTree, "debian-12-x86_64-minimal")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# debian-12-x86_64-minimal, from ../../templates\n",
		"name: debian-12-x86_64-minimal\n",
		"suite: bookworm ",
		"# ../../templates/debian/12/config.yaml:2\n",
		"      - bookworm-security\n",
		"  - systemd-sysv ",
		"  - name: linux-image-amd64 ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show-config output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "openssh-server") {
		t.Errorf("the minimal set has openssh-server, which only the default set adds:\n%s", out)
	}
	if _, _, err := run(t, nil, "show-config", "--templates", shippedTree, "debian-12-x86_64-default"); err != nil {
		t.Errorf("the -default suffix: %v", err)
	}
	_, _, err = run(t, nil, "show-config", "--templates", shippedTree, "debian-12-amd64")
	if err == nil || !strings.Contains(err.Error(), `no template "debian-12-amd64"`) {
		t.Errorf("unknown template: got %v", err)
	}
}

func TestTemplateSearchPath(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantOut string
		wantErr string
	}{
		{
			name:    "environment",
			env:     map[string]string{TemplatesEnv: shippedTree},
			wantOut: "../../templates: OK",
		},
		{
			name:    "flag wins over environment",
			env:     map[string]string{TemplatesEnv: "/nonexistent"},
			args:    []string{"--templates", shippedTree},
			wantOut: "../../templates: OK",
		},
		{
			name:    "missing directory",
			args:    []string{"--templates", "/nonexistent/templates"},
			wantErr: "template tree /nonexistent/templates (from --templates) is not a directory",
		},
		{
			name:    "configured path",
			args:    []string{"--config", "CONF"},
			wantOut: "../../templates: OK",
		},
	}
	conf := writeConfig(t, "templates_path = /nonexistent/local:"+shippedTree+"\n")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"check"}
			for _, a := range tt.args {
				args = append(args, strings.ReplaceAll(a, "CONF", conf))
			}
			out, _, err := run(t, tt.env, args...)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("got error %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("got %q, want it to contain %q", out, tt.wantOut)
			}
		})
	}
}

// TestManPagesAreCurrent fails when docs/man/vzpkg*.8 no longer match the
// command tree; `go test ./internal/vzpkgcli -update` regenerates them.
func TestManPagesAreCurrent(t *testing.T) {
	manpage.Check(t, New(Env{}), "../../docs/man", *update, "go test ./internal/vzpkgcli -update")
}

// TestRemoveCacheRefusesPathsAsNames gives remove cache names that are paths:
// each is refused as create would refuse it, and nothing is deleted.
func TestRemoveCacheRefusesPathsAsNames(t *testing.T) {
	base := t.TempDir()
	cacheDir := filepath.Join(base, "cache")
	outside := filepath.Join(base, "somewhere")
	for _, d := range []string{cacheDir, outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	victims := []string{"x.tar.gz", "x.tar.gz.sha256", "x.tar.gz-old", "x.manifest", "debian-12-x86_64.tar.gz"}
	for _, v := range victims {
		if err := os.WriteFile(filepath.Join(outside, v), []byte("keep\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"../somewhere/x", "../somewhere/debian-12-x86_64", outside + "/debian-12-x86_64", "..", ".", "x/../../somewhere/x"} {
		_, _, err := run(t, nil, "remove", "cache", name, "--cache-dir", cacheDir)
		if err == nil || !strings.Contains(err.Error(), "template name") {
			t.Errorf("remove cache %s: got %v, want the name refused", name, err)
		}
	}
	for _, v := range victims {
		if _, err := os.Stat(filepath.Join(outside, v)); err != nil {
			t.Errorf("remove cache deleted %s outside the cache directory", v)
		}
	}
}

// TestCacherURLMustBeABase refuses pkg-cacher URLs with a path, query,
// fragment or user: they would be written into the template's sources.
func TestCacherURLMustBeABase(t *testing.T) {
	for _, u := range []string{
		"http://127.0.0.1:9/debian",
		"http://127.0.0.1:9/?x=1",
		"http://127.0.0.1:9/#frag",
		"http://user:pw@127.0.0.1:9/",
		"ftp://127.0.0.1:9/",
	} {
		_, _, err := run(t, nil, "create", "cache", "debian-12-x86_64-minimal", "--templates", shippedTree, "--cache-dir", t.TempDir(), "--cacher", u)
		if err == nil || !strings.Contains(err.Error(), "want http://HOST:PORT/") {
			t.Errorf("--cacher %s: got %v, want it refused (want http://HOST:PORT/)", u, err)
		}
	}
}

// TestContainerVerbsBesideCacheCommands: update and remove act on
// containers and keep their cache subcommands; a wrong command line exits
// with ExitUsage, a missing container with ExitFailure.
func TestContainerVerbsBesideCacheCommands(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nonexistent")
	tests := []struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		{[]string{"update"}, ExitUsage, "usage: vzpkg update CT [PKG...] | --all"},
		{[]string{"update", "--all", "101"}, ExitUsage, "--all updates every package of every container"},
		{[]string{"update", missing}, ExitFailure, "container " + missing + ": stat " + missing + ": no such file or directory"},
		{[]string{"update", "cache", "no-such-template", "--templates", shippedTree}, 0, `no template "no-such-template"`},
		{[]string{"remove", "101"}, ExitUsage, "usage: vzpkg remove CT PKG..."},
		{[]string{"remove", "cache", "debian-12-x86_64-gone", "--cache-dir", t.TempDir()}, 0, "debian-12-x86_64-gone is not in"},
		{[]string{"install", "web1", "hello"}, ExitUsage, `container "web1": give an OpenVZ CTID (a number), lxc:NAME or a root directory`},
		{[]string{"list", "--json"}, ExitUsage, "--json and --driver are for the packages of a container"},
		{[]string{"check-updates"}, ExitUsage, "usage: vzpkg check-updates CT | --all"},
		{[]string{"info", missing, "hello"}, ExitFailure, "container " + missing},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, _, err := run(t, nil, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error saying %q", err, tt.wantErr)
			}
			var ee *ExitError
			code := 0
			if errors.As(err, &ee) {
				code = ee.Code
			}
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d (0: not an ExitError, the program's default 1)", code, tt.wantCode)
			}
		})
	}
}

// TestCompletionsAreCurrent fails when etc/completions/*/vzpkg* no longer
// match the command tree; `go test ./internal/vzpkgcli -update` rewrites them.
func TestCompletionsAreCurrent(t *testing.T) {
	completion.Check(t, New(Env{}), "../../etc/completions", *update, "go test ./internal/vzpkgcli -update")
}
