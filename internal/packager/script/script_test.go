package script_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"vzpkg2/internal/packager"
	"vzpkg2/internal/packager/script"
)

// scripts writes the executables of a script packager "vztest" into a new
// directory: name is the operation, data the script's body after the
// shebang line.
func scripts(t *testing.T, ops map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for op, body := range ops {
		writeTestFile(t, filepath.Join(dir, "vztest-"+op), "#!/bin/sh\n"+body+"\n", 0o755)
	}
	return dir
}

func newVztest(t *testing.T, dirs ...string) *script.Script {
	t.Helper()
	s, err := script.New("vztest", dirs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMissingExecutable(t *testing.T) {
	empty := t.TempDir()
	writeTestFile(t, filepath.Join(empty, "vztest-install"), "#!/bin/sh\n", 0o644) // not executable
	if _, err := script.New("vztest", []string{empty}); err == nil || !strings.Contains(err.Error(), empty) {
		t.Errorf("New without executables: %v, want an error naming %s", err, empty)
	}
	dir := scripts(t, map[string]string{"query": ""})
	s := newVztest(t, empty, dir)
	err := s.Install(t.Context(), t.TempDir(), &packager.Spec{}, packager.Env{}, []string{"a"})
	if err == nil || !strings.Contains(err.Error(), "no executable vztest-install in "+empty+", "+dir) {
		t.Errorf("Install without vztest-install: %v, want an error naming the file and the directories searched", err)
	}
	if _, err := script.New("../vztest", []string{dir}); err == nil {
		t.Error("New accepted a name with a slash")
	}
}

// TestSearchOrder: the first directory holding an operation's executable
// wins.
func TestSearchOrder(t *testing.T) {
	first := scripts(t, map[string]string{"query": `printf 'first\t1\tx86_64\n'`})
	second := scripts(t, map[string]string{"query": `printf 'second\t1\tx86_64\n'`, "remove": "exit 0"})
	s := newVztest(t, first, second)
	pkgs, err := s.Query(t.Context(), t.TempDir())
	if err != nil || len(pkgs) != 1 || pkgs[0].Name != "first" {
		t.Errorf("Query: %v, %v; want the first directory's", pkgs, err)
	}
	if err := s.Remove(t.Context(), t.TempDir(), &packager.Spec{}, packager.Env{}, []string{"a"}); err != nil {
		t.Errorf("Remove from the second directory: %v", err)
	}
}

func TestExitCodes(t *testing.T) {
	s := newVztest(t, scripts(t, map[string]string{
		"install": `echo "downloading $1" ; echo "E: the mirror is on fire" >&2; exit 1`,
		"remove":  `echo "not installed: $*" >&2; exit 3`,
		"update":  `exit 3`,
		"query":   "",
	}))
	root, spec := t.TempDir(), &packager.Spec{}
	err := s.Install(t.Context(), root, spec, packager.Env{}, []string{"vz-a"})
	if err == nil || !strings.Contains(err.Error(), "vztest-install failed") || !strings.Contains(err.Error(), "E: the mirror is on fire") ||
		!strings.Contains(err.Error(), "downloading vz-a") {
		t.Errorf("Install exiting 1: %v, want an error naming the script with its output", err)
	}
	if errors.Is(err, script.ErrUnknownPackage) {
		t.Errorf("Install exiting 1 is ErrUnknownPackage: %v", err)
	}
	err = s.Remove(t.Context(), root, spec, packager.Env{}, []string{"vz-a", "vz-b"})
	if !errors.Is(err, script.ErrUnknownPackage) || !strings.Contains(err.Error(), "not installed: vz-a vz-b") {
		t.Errorf("Remove exiting 3: %v, want ErrUnknownPackage with the script's message", err)
	}
	if _, err := s.Update(t.Context(), root, spec, packager.Env{}, nil); err == nil || errors.Is(err, script.ErrUnknownPackage) {
		t.Errorf("Update exiting 3: %v, want a plain failure (3 means unknown package for install and remove only)", err)
	}
	if err := s.Install(t.Context(), root, spec, packager.Env{}, []string{"--force"}); err == nil {
		t.Error("Install passed an option-like package argument to the script")
	}
}

func TestBadListOutput(t *testing.T) {
	for _, tc := range []struct{ name, out, want string }{
		{"spaces", `a 1.0 x86_64`, `vztest-query: output line 1 "a 1.0 x86_64": want name<TAB>version<TAB>arch`},
		{"two fields", `ok\t1\tx86_64\na\t1.0`, `vztest-query: output line 2 "a\t1.0": want name<TAB>version<TAB>arch`},
		{"empty version", `a\t\tx86_64`, `output line 1 "a\t\tx86_64"`},
		{"twice", `a\t1\tx86_64\nb\t1\tx86_64\na\t2\tx86_64`, `vztest-query: output line 3 lists a (x86_64) again, after line 1`},
		{"escape sequence", `a\033]0;x\007\t1\tx86_64`, `vztest-query: output line 1 "a\x1b]0;x\a\t1\tx86_64": a control character in it`},
		{"without end", `a\t1\tx86_64\n'; yes; printf '`, `vztest-query printed more than 64 MiB on its standard output`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newVztest(t, scripts(t, map[string]string{"query": `printf '` + tc.out + `\n'`}))
			_, err := s.Query(t.Context(), t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Query: %v, want %q", err, tc.want)
			}
		})
	}
	s := newVztest(t, scripts(t, map[string]string{"check-updates": `printf 'b\t2\tx86_64\na\t1\tany\n'`}))
	pkgs, err := s.CheckUpdates(t.Context(), t.TempDir(), &packager.Spec{}, packager.Env{})
	want := []packager.Package{{Name: "a", Version: "1", Arch: "any"}, {Name: "b", Version: "2", Arch: "x86_64"}}
	if err != nil || !slices.Equal(pkgs, want) {
		t.Errorf("CheckUpdates: %v, %v; want %v, sorted", pkgs, err, want)
	}
}

// TestEnvironment checks the variables a script gets, and that nothing
// else of vzpkg's environment reaches it.
func TestEnvironment(t *testing.T) {
	t.Setenv("VZTEST_LEAK", "1")
	t.Setenv("http_proxy", "http://192.0.2.1:3128/")
	s := newVztest(t, scripts(t, map[string]string{
		"bootstrap": `env > "$VZPKG_ROOT/env"; cp "$VZPKG_REPOS" "$VZPKG_ROOT/repos"`,
		"query":     "",
	}))
	root := t.TempDir()
	cacher := mustURL(t, "http://127.0.0.1:9/")
	spec := &packager.Spec{
		Name: "arch-1-x86_64", Arch: "x86_64", ArchName: "x86_64", Releasever: "1",
		Repos: []packager.Repo{
			{Name: "core", Mirrors: []string{"https://mirror.example/core/os/$arch", "http://other.example/core"}},
			{Name: "extra", Mirrors: []string{"http://mirror.example/extra"}, Keys: []string{"/keys/extra.gpg"}},
		},
		Keys:     []string{"/keys/main.gpg"},
		Packages: []string{"base", "vim"},
	}
	env := packager.Env{Cacher: cacher, Dummies: []string{"/d/kernel.pkg", "/d/udev.pkg"}}
	rel, err := filepath.Rel(mustGetwd(t), root)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Bootstrap(t.Context(), rel, spec, env); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, kv := range strings.Split(readTestFile(t, filepath.Join(root, "env")), "\n") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			got[k] = v
		}
	}
	for k, want := range map[string]string{
		"VZPKG_OPERATION": "bootstrap", "VZPKG_PACKAGER": "vztest", "VZPKG_ROOT": root,
		"VZPKG_TEMPLATE": "arch-1-x86_64", "VZPKG_ARCH": "x86_64", "VZPKG_RELEASEVER": "1",
		"VZPKG_CACHER": "http://127.0.0.1:9/", "VZPKG_VERBOSE": "0", "VZPKG_WEAK_DEPS": "0",
		"LC_ALL": "C.UTF-8",
	} {
		if got[k] != want {
			t.Errorf("%s=%q, want %q", k, got[k], want)
		}
	}
	// Lists are one item a line: env prints the later items as lines of their own.
	env0 := readTestFile(t, filepath.Join(root, "env"))
	for _, want := range []string{"VZPKG_PACKAGES=base\nvim\n", "VZPKG_DUMMIES=/d/kernel.pkg\n/d/udev.pkg\n", "VZPKG_KEYS=/keys/main.gpg\n/keys/extra.gpg\n"} {
		if !strings.Contains(env0, want) {
			t.Errorf("the environment lacks %q:\n%s", want, env0)
		}
	}
	for _, k := range []string{"VZTEST_LEAK", "http_proxy"} {
		if _, ok := got[k]; ok {
			t.Errorf("vzpkg's %s reached the script", k)
		}
	}
	wantRepos := "core\thttp://127.0.0.1:9/HTTPS///mirror.example/core/os/$arch\thttps://mirror.example/core/os/$arch\n" +
		"core\thttp://127.0.0.1:9/other.example/core\thttp://other.example/core\n" +
		"extra\thttp://127.0.0.1:9/mirror.example/extra\thttp://mirror.example/extra\n"
	if got := readTestFile(t, filepath.Join(root, "repos")); got != wantRepos {
		t.Errorf("VZPKG_REPOS file:\n%s\nwant\n%s", got, wantRepos)
	}
}

func TestUpdateChangedIsWhatQueryShows(t *testing.T) {
	s := newVztest(t, scripts(t, map[string]string{
		"update": `[ "${1:-}" = a ] && echo 2 > "$VZPKG_ROOT/version"; exit 0`,
		"query":  `printf 'a\t%s\tany\n' "$(cat "$VZPKG_ROOT/version")"`,
	}))
	root := t.TempDir()
	writeTestFile(t, filepath.Join(root, "version"), "1\n", 0o644)
	for _, tc := range []struct {
		args []string
		want bool
	}{{nil, false}, {[]string{"a"}, true}, {[]string{"a"}, false}} {
		changed, err := s.Update(t.Context(), root, &packager.Spec{}, packager.Env{}, tc.args)
		if err != nil || changed != tc.want {
			t.Errorf("Update %v: changed %t, %v; want %t", tc.args, changed, err, tc.want)
		}
	}
}

func TestDummyOutput(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"in the directory", `f="$VZPKG_OUTPUT_DIR/$VZPKG_DUMMY_NAME-$VZPKG_DUMMY_VERSION.pkg"; echo "$VZPKG_DUMMY_PROVIDES" > "$f"; echo "$f"`, ""},
		{"outside", `echo /etc/passwd`, "which is not in VZPKG_OUTPUT_DIR"},
		{"nothing written", `echo "$VZPKG_OUTPUT_DIR/kernel.pkg"`, "which is not a regular file"},
		{"two lines", `echo a; echo b`, "want the path of the package file it wrote, one line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newVztest(t, scripts(t, map[string]string{"dummy": tc.body}))
			dir := t.TempDir()
			p, err := s.Dummy(t.Context(), dir, &packager.Spec{}, packager.Dummy{Name: "kernel", Version: "99:1.0-1", Provides: []string{"kernel-core", "linux"}})
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("Dummy: %q, %v; want an error saying %q", p, err, tc.want)
				}
				return
			}
			if err != nil || p != filepath.Join(dir, "kernel-99:1.0-1.pkg") || readTestFile(t, p) != "kernel-core\nlinux\n" {
				t.Errorf("Dummy: %q, %v", p, err)
			}
		})
	}
}

// TestCancelStopsTheProcessGroup cancels a bootstrap whose script waits
// for a child: Bootstrap returns the context's error and the child is
// gone.
func TestCancelStopsTheProcessGroup(t *testing.T) {
	s := newVztest(t, scripts(t, map[string]string{
		"bootstrap": `sleep 600 & echo $! > "$VZPKG_ROOT/pid"; echo started > "$VZPKG_ROOT/fifo"; wait`,
	}))
	root := t.TempDir()
	fifo := filepath.Join(root, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Bootstrap(ctx, root, &packager.Spec{}, packager.Env{}) }()
	readTestFile(t, fifo) // the script is running, its child started
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Bootstrap: %v, want context.Canceled", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(readTestFile(t, filepath.Join(root, "pid"))))
	if err != nil {
		t.Fatal(err)
	}
	// Gone, or a zombie waiting for init to reap it.
	if stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
		if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) > 0 && f[0] != "Z" {
			t.Errorf("the script's child %d is still running (state %s)", pid, f[0])
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func readTestFile(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

// TestRepos: NAME-repos gets the root's release and architecture, and
// its repositories (mirrors grouped by name, in order) and keys are read
// from what it prints; anything else it prints is an error naming the
// line.
func TestRepos(t *testing.T) {
	s := newVztest(t, scripts(t, map[string]string{
		"repos": `[ "$VZPKG_OPERATION $VZPKG_ARCH $VZPKG_RELEASEVER" = "repos x86_64 1" ] || exit 1
printf 'repo\tcore\thttp://a/core\nkey\t/etc/k.asc\n\nrepo\textra\thttp://a/extra\nrepo\tcore\thttp://b/core\nkey\t/etc/k.asc\n'`,
	}))
	spec := &packager.Spec{Name: "arch-1-x86_64", Arch: "x86_64", Releasever: "1"}
	repos, keys, err := s.Repos(t.Context(), t.TempDir(), spec)
	if err != nil {
		t.Fatal(err)
	}
	want := []packager.Repo{{Name: "core", Mirrors: []string{"http://a/core", "http://b/core"}}, {Name: "extra", Mirrors: []string{"http://a/extra"}}}
	if !slices.EqualFunc(repos, want, func(a, b packager.Repo) bool { return a.Name == b.Name && slices.Equal(a.Mirrors, b.Mirrors) }) {
		t.Errorf("repos %v, want %v", repos, want)
	}
	if !slices.Equal(keys, []string{"/etc/k.asc"}) {
		t.Errorf("keys %v, want [/etc/k.asc]", keys)
	}

	for _, tc := range []struct{ name, out, want string }{
		{"a pacman line", `repo\tcore\thttp://a/core\nServer = http://b/`, `vztest-repos: output line 2 "Server = http://b/"`},
		{"a name with a slash", `repo\t../../etc/x\thttp://a/`, `vztest-repos: output line 1: repository name "../../etc/x"`},
		{"the name ..", `repo\t..\thttp://a/`, `vztest-repos: output line 1: repository name ".."`},
		{"an escape sequence", `repo\tcore\033[2J\thttp://a/`, `vztest-repos: output line 1 "repo\tcore\x1b[2J\thttp://a/": a control character in it`},
	} {
		bad := newVztest(t, scripts(t, map[string]string{"repos": `printf '` + tc.out + `\n'`}))
		if _, _, err := bad.Repos(t.Context(), t.TempDir(), spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Repos of a script printing a %s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
