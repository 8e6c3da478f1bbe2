// Package script is the packager backend that runs external executables,
// one per operation, so a package manager vzpkg has no backend for is
// supported by adding scripts: a template's `packager: script:NAME` runs
// NAME-bootstrap, NAME-install, and so on.
//
// The contract (directories, environment, arguments, output formats, exit
// codes) is described for script authors in vzpkg-packager(7),
// docs/man/vzpkg-packager.7; this file is its implementation.
package script

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"vzpkg2/internal/packager"
)

// SystemDir is where script packagers installed on the host live; a
// template tree's own _packagers directories are searched before it.
const SystemDir = "/usr/lib/vzpkg/packagers"

// The operations, each run as the executable NAME-<operation>.
const (
	OpBootstrap      = "bootstrap"
	OpInstall        = "install"
	OpRemove         = "remove"
	OpUpdate         = "update"
	OpQuery          = "query"
	OpCheckUpdates   = "check-updates"
	OpConfigureRepos = "configure-repos"
	OpDummy          = "dummy"
	OpRepos          = "repos"
)

// operations lists every operation, in the order the man page gives them.
var operations = []string{OpBootstrap, OpInstall, OpRemove, OpUpdate, OpQuery, OpCheckUpdates, OpConfigureRepos, OpDummy, OpRepos}

// ExitUnknownPackage is the exit code with which install and remove say
// that a package they were given is unknown (not in the repositories, or
// not installed) and that they changed nothing.
const ExitUnknownPackage = 3

// ErrUnknownPackage is wrapped by the error of an install or remove whose
// script exited with ExitUnknownPackage.
var ErrUnknownPackage = errors.New("unknown package")

// cancelGrace is how long a cancelled script's process group has between
// SIGTERM and SIGKILL: a package manager finishes the transaction it is in.
const cancelGrace = 30 * time.Second

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.+-]*$`)

// Script is the backend of one script packager.
type Script struct {
	name string
	dirs []string // absolute, searched in order
}

// New returns the script packager name, whose executables are looked for
// in dirs, in order. It fails when name is not a valid packager name or no
// directory holds any of its executables.
func New(name string, dirs []string) (*Script, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("script packager %q: a name is lower-case letters, digits and _.+- (starting with a letter or digit)", name)
	}
	s := &Script{name: name}
	for _, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, err
		}
		s.dirs = append(s.dirs, abs)
	}
	for _, op := range operations {
		if _, err := s.executable(op); err == nil {
			return s, nil
		}
	}
	return nil, fmt.Errorf("script packager %q: no executable %s-<operation> in %s", name, name, strings.Join(s.dirs, ", "))
}

// Family returns the packager.Family of script packagers, which looks for
// them in dirs, in order.
func Family(dirs []string) packager.Family {
	return func(name string) (packager.Packager, error) { return New(name, dirs) }
}

// executable returns the path of the executable of op: the first
// NAME-op in s.dirs that is a regular file with an execute bit.
func (s *Script) executable(op string) (string, error) {
	file := s.name + "-" + op
	for _, d := range s.dirs {
		p := filepath.Join(d, file)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("script packager %q: no executable %s in %s", s.name, file, strings.Join(s.dirs, ", "))
}

// call is one run of an operation's executable.
type call struct {
	op     string
	root   string
	spec   *packager.Spec // nil for query
	env    packager.Env
	cacher *url.URL // the cacher the repositories are reached or configured through
	args   []string
	vars   []string // more VZPKG_ variables
	stdout *bytes.Buffer
}

// run runs c's executable with the contract's environment in a private
// directory, which it removes afterwards.
func (s *Script) run(ctx context.Context, c call) error {
	exe, err := s.executable(c.op)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "vzpkg-script-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	env, err := s.environ(c, tmp)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, exe, c.args...)
	cmd.Env = env
	cmd.Dir = tmp
	var stdout io.Writer // nil: with the error output, to c.env.Output
	var capped *cappedWriter
	if c.stdout != nil {
		capped = &cappedWriter{w: c.stdout}
		stdout = capped
	}
	err = packager.Run(ctx, c.env, cmd, filepath.Base(exe), stdout, cancelGrace)
	if capped != nil && capped.over {
		return fmt.Errorf("%s printed more than %d MiB on its standard output", filepath.Base(exe), maxOutput>>20)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == ExitUnknownPackage && (c.op == OpInstall || c.op == OpRemove) {
		return fmt.Errorf("%w: %w", ErrUnknownPackage, err)
	}
	return err
}

// maxOutput bounds what vzpkg keeps of an operation's standard output
// (lists of packages and repositories, a path).
const maxOutput = 64 << 20

// cappedWriter passes at most maxOutput bytes to w. Past that it fails,
// and the script's next write to its closed standard output fails too.
type cappedWriter struct {
	w    io.Writer
	n    int
	over bool
}

func (c *cappedWriter) Write(p []byte) (int, error) {
	if c.n+len(p) > maxOutput {
		c.over = true
		return 0, errors.New("too much output")
	}
	c.n += len(p)
	return c.w.Write(p)
}

// environ returns the clean environment of c: a fixed PATH and locale, and
// the VZPKG_ variables of the contract, the lists one item a line.
func (s *Script) environ(c call, tmp string) ([]string, error) {
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"LC_ALL=C.UTF-8",
		"HOME=" + tmp,
		"TMPDIR=" + tmp,
		"VZPKG_OPERATION=" + c.op,
		"VZPKG_PACKAGER=" + s.name,
		"VZPKG_VERBOSE=" + boolVar(c.env.Verbose),
	}
	if c.root != "" {
		root, err := filepath.Abs(c.root)
		if err != nil {
			return nil, err
		}
		env = append(env, "VZPKG_ROOT="+root)
	}
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		env = append(env, "SOURCE_DATE_EPOCH="+v)
	}
	cacher := ""
	if c.cacher != nil {
		cacher = c.cacher.String()
	}
	env = append(env, "VZPKG_CACHER="+cacher)
	if sp := c.spec; sp != nil {
		repos := filepath.Join(tmp, "repos")
		if err := os.WriteFile(repos, []byte(reposFile(sp, c.cacher)), 0o644); err != nil {
			return nil, err
		}
		var keys []string
		for _, r := range sp.Repos {
			for _, k := range sp.RepoKeys(r) {
				if !slices.Contains(keys, k) {
					keys = append(keys, k)
				}
			}
		}
		env = append(env,
			"VZPKG_TEMPLATE="+sp.Name,
			"VZPKG_ARCH="+sp.Arch,
			"VZPKG_ARCH_NAME="+sp.ArchName,
			"VZPKG_RELEASEVER="+sp.Releasever,
			"VZPKG_SUITE="+sp.Suite,
			"VZPKG_REPOS="+repos,
			"VZPKG_KEYS="+strings.Join(keys, "\n"),
			"VZPKG_PACKAGES="+strings.Join(sp.Packages, "\n"),
			"VZPKG_WEAK_DEPS="+boolVar(sp.WeakDeps),
			"VZPKG_NODOCS="+boolVar(sp.NoDocs),
		)
	}
	env = append(env, "VZPKG_DUMMIES="+strings.Join(c.env.Dummies, "\n"))
	return append(env, c.vars...), nil
}

// reposFile is the content of the VZPKG_REPOS file: a line per mirror of
// every repository, "name<TAB>url<TAB>upstream-url", in order, where url is
// the upstream URL through cacher when there is one.
func reposFile(sp *packager.Spec, cacher *url.URL) string {
	var b strings.Builder
	for _, r := range sp.Repos {
		for _, m := range r.Mirrors {
			u := m
			if cacher != nil {
				u = packager.ThroughCacher(cacher, m)
			}
			fmt.Fprintf(&b, "%s\t%s\t%s\n", r.Name, u, m)
		}
	}
	return b.String()
}

func boolVar(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// checkNames refuses package arguments a script could take for options or
// split: empty, starting with -, or holding white space.
func checkNames(pkgs []string) error {
	for _, p := range pkgs {
		if p == "" || strings.HasPrefix(p, "-") || strings.ContainsFunc(p, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
			return fmt.Errorf("invalid package argument %q", p)
		}
	}
	return nil
}

// Bootstrap runs NAME-bootstrap.
func (s *Script) Bootstrap(ctx context.Context, root string, spec *packager.Spec, env packager.Env) error {
	if err := checkNames(spec.Packages); err != nil {
		return err
	}
	return s.run(ctx, call{op: OpBootstrap, root: root, spec: spec, env: env, cacher: env.Cacher})
}

// Install runs NAME-install with pkgs as arguments.
func (s *Script) Install(ctx context.Context, root string, spec *packager.Spec, env packager.Env, pkgs []string) error {
	if err := checkNames(pkgs); err != nil {
		return err
	}
	return s.run(ctx, call{op: OpInstall, root: root, spec: spec, env: env, cacher: env.Cacher, args: pkgs})
}

// Remove runs NAME-remove with pkgs as arguments.
func (s *Script) Remove(ctx context.Context, root string, spec *packager.Spec, env packager.Env, pkgs []string) error {
	if err := checkNames(pkgs); err != nil {
		return err
	}
	return s.run(ctx, call{op: OpRemove, root: root, spec: spec, env: env, cacher: env.Cacher, args: pkgs})
}

// Update runs NAME-update with pkgs as arguments. Whether it changed the
// installed packages is what NAME-query lists before and after.
func (s *Script) Update(ctx context.Context, root string, spec *packager.Spec, env packager.Env, pkgs []string) (bool, error) {
	if err := checkNames(pkgs); err != nil {
		return false, err
	}
	before, err := s.Query(ctx, root)
	if err != nil {
		return false, err
	}
	if err := s.run(ctx, call{op: OpUpdate, root: root, spec: spec, env: env, cacher: env.Cacher, args: pkgs}); err != nil {
		return false, err
	}
	after, err := s.Query(ctx, root)
	if err != nil {
		return false, err
	}
	return !slices.Equal(before, after), nil
}

// Query runs NAME-query and reads its list.
func (s *Script) Query(ctx context.Context, root string) ([]packager.Package, error) {
	var out bytes.Buffer
	if err := s.run(ctx, call{op: OpQuery, root: root, stdout: &out}); err != nil {
		return nil, err
	}
	return s.parseList(OpQuery, out.Bytes())
}

// CheckUpdates runs NAME-check-updates and reads its list.
func (s *Script) CheckUpdates(ctx context.Context, root string, spec *packager.Spec, env packager.Env) ([]packager.Package, error) {
	var out bytes.Buffer
	if err := s.run(ctx, call{op: OpCheckUpdates, root: root, spec: spec, env: env, cacher: env.Cacher, stdout: &out}); err != nil {
		return nil, err
	}
	return s.parseList(OpCheckUpdates, out.Bytes())
}

// ConfigureRepos runs NAME-configure-repos, with VZPKG_CACHER empty when
// cacher is nil.
func (s *Script) ConfigureRepos(ctx context.Context, root string, spec *packager.Spec, cacher *url.URL) error {
	return s.run(ctx, call{op: OpConfigureRepos, root: root, spec: spec, cacher: cacher})
}

// Dummy runs NAME-dummy, which writes the package file into dir and
// prints its path.
func (s *Script) Dummy(ctx context.Context, dir string, spec *packager.Spec, d packager.Dummy) (string, error) {
	if err := checkNames(append([]string{d.Name, d.Version}, d.Provides...)); err != nil {
		return "", fmt.Errorf("dummy %s: %w", d.Name, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	err = s.run(ctx, call{op: OpDummy, spec: spec, stdout: &out, vars: []string{
		"VZPKG_OUTPUT_DIR=" + abs,
		"VZPKG_DUMMY_NAME=" + d.Name,
		"VZPKG_DUMMY_VERSION=" + d.Version,
		"VZPKG_DUMMY_PROVIDES=" + strings.Join(d.Provides, "\n"),
	}})
	if err != nil {
		return "", err
	}
	what := s.name + "-" + OpDummy
	path := strings.TrimSpace(out.String())
	if path == "" || strings.Contains(path, "\n") {
		return "", fmt.Errorf("%s printed %q; want the path of the package file it wrote, one line", what, path)
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(abs, path)
	}
	if filepath.Dir(path) != abs {
		return "", fmt.Errorf("%s printed %s, which is not in VZPKG_OUTPUT_DIR %s", what, path, abs)
	}
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s printed %s, which is not a regular file (%v)", what, path, err)
	}
	return path, nil
}

// Repos runs NAME-repos, which reads the repository configuration of the
// installed root, and returns the repositories and signing keys it
// printed: keys as printed (an http(s) URL, or an absolute path in the
// root), which the caller checks. spec gives the root's template, release
// and architecture; its repositories and packages are not passed.
func (s *Script) Repos(ctx context.Context, root string, spec *packager.Spec) ([]packager.Repo, []string, error) {
	var out bytes.Buffer
	err := s.run(ctx, call{op: OpRepos, root: root, stdout: &out, vars: []string{
		"VZPKG_TEMPLATE=" + spec.Name,
		"VZPKG_ARCH=" + spec.Arch,
		"VZPKG_ARCH_NAME=" + spec.ArchName,
		"VZPKG_RELEASEVER=" + spec.Releasever,
		"VZPKG_SUITE=" + spec.Suite,
	}})
	if err != nil {
		return nil, nil, err
	}
	return s.parseRepos(out.Bytes())
}

// parseRepos reads what NAME-repos printed: "repo<TAB>name<TAB>url" a
// line per mirror, the repositories and their mirrors in order, and
// "key<TAB>key" a line per signing key.
func (s *Script) parseRepos(data []byte) ([]packager.Repo, []string, error) {
	what := s.name + "-" + OpRepos
	var (
		repos []packager.Repo
		keys  []string
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if slices.ContainsFunc(f, hasControl) {
			return nil, nil, fmt.Errorf("%s: output line %d %q: a control character in it", what, n, line)
		}
		switch {
		case len(f) == 3 && f[0] == "repo" && (f[1] == "." || f[1] == ".." || strings.Contains(f[1], "/")):
			return nil, nil, fmt.Errorf("%s: output line %d: repository name %q: a package manager makes a file of it: want no / and not . or ..", what, n, f[1])
		case len(f) == 3 && f[0] == "repo" && f[1] != "" && f[2] != "":
			i := slices.IndexFunc(repos, func(r packager.Repo) bool { return r.Name == f[1] })
			if i < 0 {
				repos = append(repos, packager.Repo{Name: f[1]})
				i = len(repos) - 1
			}
			repos[i].Mirrors = append(repos[i].Mirrors, f[2])
		case len(f) == 2 && f[0] == "key" && f[1] != "":
			if !slices.Contains(keys, f[1]) {
				keys = append(keys, f[1])
			}
		default:
			return nil, nil, fmt.Errorf("%s: output line %d %q: want repo<TAB>name<TAB>url or key<TAB>key", what, n, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("%s: read its output: %w", what, err)
	}
	return repos, keys, nil
}

// parseList reads the list op printed: one package a line,
// "name<TAB>version<TAB>arch", every field non-empty, each name and
// architecture once. It returns the list sorted.
func (s *Script) parseList(op string, data []byte) ([]packager.Package, error) {
	what := s.name + "-" + op
	var pkgs []packager.Package
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 3 || f[0] == "" || f[1] == "" || f[2] == "" {
			return nil, fmt.Errorf("%s: output line %d %q: want name<TAB>version<TAB>arch", what, n, line)
		}
		if slices.ContainsFunc(f, hasControl) {
			return nil, fmt.Errorf("%s: output line %d %q: a control character in it", what, n, line)
		}
		key := f[0] + "\x00" + f[2]
		if first, dup := seen[key]; dup {
			return nil, fmt.Errorf("%s: output line %d lists %s (%s) again, after line %d", what, n, f[0], f[2], first)
		}
		seen[key] = n
		pkgs = append(pkgs, packager.Package{Name: f[0], Version: f[1], Arch: f[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: read its output: %w", what, err)
	}
	packager.SortPackages(pkgs)
	return pkgs, nil
}

// hasControl reports whether s holds a control character: what a script
// reads in a container's root (a package's name, a repository's) is shown
// on the user's terminal, which must not get a container's escape
// sequences.
func hasControl(s string) bool { return strings.ContainsFunc(s, unicode.IsControl) }
