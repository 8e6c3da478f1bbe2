package repotest

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// dnfTimeout bounds one dnf run.
const dnfTimeout = 2 * time.Minute

// DnfClient is a real dnf confined to a private directory: its own dnf.conf
// holding the repositories (no reposdir, no variables or plugins from the
// host, no proxy from the environment), its own metadata cache, logs and
// install root. Packages are not signed: dnf runs with --nogpgcheck.
type DnfClient struct {
	// Dir is the client's private directory. dnf.conf is Dir/dnf.conf,
	// packages are installed into Dir/root.
	Dir string
	// ReleaseVer is given to dnf as --releasever, $releasever in baseurl.
	ReleaseVer string
}

// NewDnfClient creates a dnf client in a new directory under t.TempDir whose
// dnf.conf has mainConf (extra [main] lines such as "proxy=http://127.0.0.1:3142")
// and the repository sections repos (see RPMRepo.Section).
func NewDnfClient(t testing.TB, releasever, mainConf, repos string) *DnfClient {
	t.Helper()
	c := &DnfClient{Dir: t.TempDir(), ReleaseVer: releasever}
	mkdirAll(t, c.path("root"), c.path("empty"), c.path("cache"), c.path("log"), c.path("persist"))
	conf := fmt.Sprintf(`# repotest dnf client
[main]
reposdir=%s
varsdir=%s
cachedir=%s
logdir=%s
persistdir=%s
plugins=0
gpgcheck=0
install_weak_deps=0
skip_if_unavailable=0
%s
%s`, c.path("empty"), c.path("empty"), c.path("cache"), c.path("log"), c.path("persist"), mainConf, repos)
	writeFile(t, c.path("dnf.conf"), []byte(conf), 0o644)
	return c
}

func (c *DnfClient) path(name string) string { return filepath.Join(c.Dir, name) }

// Root returns the install root.
func (c *DnfClient) Root() string { return c.path("root") }

// Run runs dnf with args in the client's environment (its dnf.conf,
// reposdir, cachedir and install root given on the command line, as the
// command line wins over anything found inside the install root) and
// returns its combined output. The error, if any, is dnf's exit status.
func (c *DnfClient) Run(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, dnfTimeout)
	defer cancel()
	full := append([]string{
		"--config=" + c.path("dnf.conf"),
		"--installroot=" + c.Root(),
		"--releasever=" + c.ReleaseVer,
		"--setopt=reposdir=" + c.path("empty"),
		"--setopt=cachedir=" + c.path("cache"),
		"--nogpgcheck", "--assumeyes",
	}, args...)
	cmd := exec.CommandContext(ctx, "dnf", full...)
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("dnf %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// Install runs dnf install for pkgs, failing the test with dnf's output on
// error.
func (c *DnfClient) Install(t testing.TB, pkgs ...string) {
	t.Helper()
	out, err := c.Run(t.Context(), append([]string{"install"}, pkgs...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// Installed returns the packages installed in the root as rpm -qa names
// them (name-version-release.arch), sorted.
func (c *DnfClient) Installed(t testing.TB) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), dnfTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "rpm", "--root", c.Root(), "-qa")
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rpm --root %s -qa: %v\n%s", c.Root(), err, out)
	}
	pkgs := strings.Fields(string(out))
	slices.Sort(pkgs)
	return pkgs
}
