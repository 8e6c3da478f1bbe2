package repotest

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// AptClient is a real apt-get confined to a private directory: its own
// configuration, sources, lists, package cache and (empty) dpkg status,
// with nothing read from the host's /etc/apt and no proxy taken from the
// environment.
type AptClient struct {
	// Dir is the client's private root. Its configuration file is
	// Dir/apt.conf; downloaded packages land in Dir/cache/archives.
	Dir string
}

// NewAptClient creates an apt client in a new directory under t.TempDir whose
// sources.list holds sourcesLine, and whose apt.conf ends with aptConf, extra
// configuration such as `Acquire::http::Proxy "http://127.0.0.1:3142/";`.
func NewAptClient(t testing.TB, sourcesLine, aptConf string) *AptClient {
	t.Helper()
	c := &AptClient{Dir: t.TempDir()}
	p := func(elem ...string) string {
		return aptQuote(t, filepath.Join(append([]string{c.Dir}, elem...)...))
	}
	mkdirAll(t,
		filepath.Join(c.Dir, "etc", "apt.conf.d"),
		filepath.Join(c.Dir, "etc", "sources.list.d"),
		filepath.Join(c.Dir, "etc", "preferences.d"),
		filepath.Join(c.Dir, "etc", "trusted.gpg.d"),
		filepath.Join(c.Dir, "state", "lists", "partial"),
		filepath.Join(c.Dir, "cache", "archives", "partial"),
		filepath.Join(c.Dir, "log"),
	)
	writeFile(t, filepath.Join(c.Dir, "state", "status"), nil, 0o644)
	writeFile(t, filepath.Join(c.Dir, "etc", "sources.list"), []byte(sourcesLine+"\n"), 0o644)

	// apt reads APT_CONFIG first, then Dir::Etc::Parts and Dir::Etc::main:
	// pointing those at an empty directory and at a non-file keeps the
	// host's configuration (proxies, docker-clean hooks, …) out. Dir::Etc
	// itself is private too, so no relative Dir::Etc entry (auth.conf for
	// credentials, say) resolves to the host's /etc/apt.
	conf := fmt.Sprintf(`// repotest apt client
Dir::Etc %s;
Dir::Etc::main "/dev/null";
Dir::Etc::Parts %s;
Dir::Etc::netrc %s;
Dir::Etc::netrcparts %s;
Dir::Etc::SourceList %s;
Dir::Etc::SourceParts %s;
Dir::Etc::Preferences %s;
Dir::Etc::PreferencesParts %s;
Dir::Etc::Trusted %s;
Dir::Etc::TrustedParts %s;
Dir::State %s;
Dir::State::Lists %s;
Dir::State::status %s;
Dir::Cache %s;
Dir::Cache::Archives %s;
Dir::Log %s;
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APT::Sandbox::User "root";
Debug::NoLocking "true";
Acquire::Languages "none";
Acquire::Retries "0";
Acquire::PDiffs "false";
`,
		p("etc"),
		p("etc", "apt.conf.d"),
		p("etc", "auth.conf"),
		p("etc", "auth.conf.d"),
		p("etc", "sources.list"),
		p("etc", "sources.list.d"),
		p("etc", "preferences"),
		p("etc", "preferences.d"),
		p("etc", "trusted.gpg"),
		p("etc", "trusted.gpg.d"),
		p("state"),
		p("state", "lists"),
		p("state", "status"),
		p("cache"),
		p("cache", "archives"),
		p("log"),
	)
	writeFile(t, c.ConfigFile(), []byte(conf+aptConf+"\n"), 0o644)
	return c
}

// ConfigFile returns the path of the client's apt.conf, the file named by
// APT_CONFIG when it runs.
func (c *AptClient) ConfigFile() string {
	return filepath.Join(c.Dir, "apt.conf")
}

// ArchivesDir returns the directory where apt-get stores downloaded packages.
func (c *AptClient) ArchivesDir() string {
	return filepath.Join(c.Dir, "cache", "archives")
}

// Run runs apt-get with args in the client's environment and returns its
// combined output. The error, if any, is apt-get's exit status.
func (c *AptClient) Run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Env = append(cleanEnv(), "APT_CONFIG="+c.ConfigFile(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("apt-get %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// Update runs apt-get update, failing the test with apt's output if it fails
// or reports any error or warning: apt-get update exits zero for some
// failures (an unreachable mirror, say) and only warns.
func (c *AptClient) Update(t testing.TB) {
	t.Helper()
	c.mustRun(t, "-q", "-y", "update")
}

// DownloadOnly runs apt-get install --download-only for pkgs, failing the
// test with apt's output on error or warning.
func (c *AptClient) DownloadOnly(t testing.TB, pkgs ...string) {
	t.Helper()
	c.mustRun(t, append([]string{"-q", "-y", "install", "--download-only"}, pkgs...)...)
}

// mustRun runs apt-get with args, failing the test on a non-zero exit status
// or on an error or warning in apt's output.
func (c *AptClient) mustRun(t testing.TB, args ...string) {
	t.Helper()
	out, err := c.Run(t.Context(), args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "E: ") || strings.HasPrefix(line, "W: ") || strings.HasPrefix(line, "Err:") {
			t.Fatalf("apt-get %s: reported a problem:\n%s", strings.Join(args, " "), out)
		}
	}
}

// Archives returns the packages apt-get has downloaded, as a map from file
// name (as apt names it, e.g. "foo_1.0-1_amd64.deb") to full path.
func (c *AptClient) Archives(t testing.TB) map[string]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(c.ArchivesDir(), "*.deb"))
	if err != nil {
		t.Fatalf("list archives: %v", err)
	}
	m := make(map[string]string, len(paths))
	for _, p := range paths {
		m[filepath.Base(p)] = p
	}
	return m
}
