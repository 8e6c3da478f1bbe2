// Package repotest provides test fixtures: real Debian and RPM repositories
// built with the distributions' own tools, real apt-get and dnf clients
// confined to a private directory, a counting HTTP(S) upstream that can be
// made to misbehave, and the project's own vzpkg and pkg-cacher binaries for
// end-to-end tests.
//
// Every function but RunWithBinaries takes a testing.TB, reports failures
// with t.Fatalf including the failing command's output, and registers its
// own clean-up.
package repotest

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// command runs name with args in dir (the current directory if empty) with
// env added to a cleaned copy of the process environment, and returns its
// standard output. It fails the test with the combined output on error.
func command(t testing.TB, dir string, env []string, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		out := stderr.String()
		if stdout.Len() < 4096 {
			out = stdout.String() + out
		}
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return stdout.Bytes()
}

// cleanEnv returns the process environment without the variables that would
// let the host's configuration leak into a fixture: proxies, locale, apt's
// and GnuPG's configuration locations.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		lk := strings.ToLower(k)
		switch {
		case strings.HasSuffix(lk, "_proxy"),
			k == "APT_CONFIG", k == "GNUPGHOME",
			k == "LANG", k == "LANGUAGE", strings.HasPrefix(k, "LC_"):
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

// writeFile writes data to name, failing the test on error.
func writeFile(t testing.TB, name string, data []byte, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(name, data, perm); err != nil {
		t.Fatalf("write fixture: %v", err)
	}
}

// mkdirAll creates each directory and its parents, failing the test on error.
func mkdirAll(t testing.TB, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("create fixture directory: %v", err)
		}
	}
}

// aptQuote quotes s as an apt configuration string value. apt's syntax has no
// escapes, so a value containing a double quote or newline is rejected.
func aptQuote(t testing.TB, s string) string {
	t.Helper()
	if strings.ContainsAny(s, "\"\n") {
		t.Fatalf("apt configuration value %q: contains a double quote or newline", s)
	}
	return `"` + s + `"`
}
