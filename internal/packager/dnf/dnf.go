// Package dnf builds and maintains roots of the RPM distributions (Fedora,
// CentOS Stream, AlmaLinux, Rocky) with the host's dnf run with
// --installroot: the template's own repositories only (a private reposdir
// and configuration, never the host's), GPG checking with the template's
// keys, fetched through pkg-cacher like the repositories themselves.
//
// dnf works on the root from outside; rpm chroots into it to install. What
// the package writes into a root goes through an os.Root, and the places
// dnf itself writes in the root (its download cache, log, history and the
// rpm database) are made, as real directories inside it, through one
// before dnf starts.
package dnf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"vzpkg2/internal/dummy"
	"vzpkg2/internal/packager"
	"vzpkg2/internal/rootfs"
	"vzpkg2/internal/tmpl"
)

// Dnf is the dnf packager. The zero value is ready to use.
type Dnf struct{}

var _ packager.Packager = Dnf{}

const (
	// bootstrapDBPath is where a bootstrap puts the rpm database: what
	// EL 8 and 9 read. Fedora and EL 10 read /usr/lib/sysimage/rpm; the
	// rpmdb-rebuild fixup moves it there with the template's own rpm.
	bootstrapDBPath = "/var/lib/rpm"
	// sysimageDBPath is the newer distributions' rpm database.
	sysimageDBPath = "/usr/lib/sysimage/rpm"
	// repoFile is the repository file ConfigureRepos writes.
	repoFile = "etc/yum.repos.d/vzpkg.repo"
	// repoHeader starts a repository file written by vzpkg.
	repoHeader = "# Written by vzpkg: repositories through pkg-cacher. The distribution's own\n# files are kept beside this one as *.repo.disabled.\n"
)

// Bootstrap installs spec's packages and env.Dummies into the empty root
// with dnf --installroot, /proc and /dev mounted in it meanwhile for the
// packages' scriptlets. Setup hooks run before, the others after.
func (d Dnf) Bootstrap(ctx context.Context, root string, spec *packager.Spec, env packager.Env) (err error) {
	defer func() { err = rootfs.Explain(root, err) }()
	if err := hooks(ctx, env, spec, root, tmpl.PhaseSetup); err != nil {
		return err
	}
	s, err := newSession(ctx, root, spec, env, bootstrapDBPath)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.close()) }()
	// No transaction history: it would hold the build's times, and two
	// builds of the same packages must be the same bytes. (dnf in the
	// container records its own transactions.)
	install := append([]string{"--setopt=history_record=False", "install"}, spec.Packages...)
	if err := s.dnf(ctx, append(install, env.Dummies...)...); err != nil {
		return err
	}
	return hooks(ctx, env, spec, root, tmpl.PhaseExtract, tmpl.PhaseEssential, tmpl.PhaseCustomize)
}

// Install runs dnf install for pkgs. dnf resolves the whole transaction
// before it changes anything: an unknown package leaves root unchanged.
func (Dnf) Install(ctx context.Context, root string, spec *packager.Spec, env packager.Env, pkgs []string) (err error) {
	defer func() { err = rootfs.Explain(root, err) }()
	if len(pkgs) == 0 {
		return nil
	}
	return withSession(ctx, root, spec, env, func(s *session) error {
		return s.dnf(ctx, append([]string{"install"}, pkgs...)...)
	})
}

// Remove runs dnf remove for pkgs, which must all be installed.
func (d Dnf) Remove(ctx context.Context, root string, spec *packager.Spec, env packager.Env, pkgs []string) (err error) {
	defer func() { err = rootfs.Explain(root, err) }()
	installed, err := d.Query(ctx, root)
	if err != nil {
		return err
	}
	for _, name := range pkgs {
		if !slices.ContainsFunc(installed, func(p packager.Package) bool { return p.Name == name }) {
			return fmt.Errorf("%s is not installed in %s", name, root)
		}
	}
	if len(pkgs) == 0 {
		return nil
	}
	return withSession(ctx, root, spec, env, func(s *session) error {
		return s.dnf(ctx, append([]string{"remove"}, pkgs...)...)
	})
}

// Update runs dnf upgrade (for pkgs, or everything), then installs what of
// spec's packages and env.Dummies is missing.
func (d Dnf) Update(ctx context.Context, root string, spec *packager.Spec, env packager.Env, pkgs []string) (changed bool, err error) {
	defer func() { err = rootfs.Explain(root, err) }()
	before, err := d.Query(ctx, root)
	if err != nil {
		return false, err
	}
	err = withSession(ctx, root, spec, env, func(s *session) error {
		if err := s.dnf(ctx, append([]string{"upgrade"}, pkgs...)...); err != nil {
			return err
		}
		if want := append(slices.Clone(spec.Packages), env.Dummies...); len(want) > 0 {
			return s.dnf(ctx, append([]string{"install"}, want...)...)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	after, err := d.Query(ctx, root)
	if err != nil {
		return false, err
	}
	return !slices.Equal(before, after), nil
}

// CheckUpdates asks dnf which installed packages spec's repositories hold
// newer versions of.
func (Dnf) CheckUpdates(ctx context.Context, root string, spec *packager.Spec, env packager.Env) (ups []packager.Package, err error) {
	defer func() { err = rootfs.Explain(root, err) }()
	var out bytes.Buffer
	err = withSession(ctx, root, spec, env, func(s *session) error {
		return s.dnfOut(ctx, &out, "-q", "repoquery", "--upgrades", "--latest-limit=1", "--qf", queryFormat)
	})
	if err != nil {
		return nil, err
	}
	return parseQuery(out.String()), nil
}

// queryFormat is one package per line for rpm -q and dnf repoquery: name,
// epoch:version-release and architecture, tab-separated.
const queryFormat = "%{name}\t%{epoch}:%{version}-%{release}\t%{arch}\n"

// parseQuery reads queryFormat lines, leaving out rpm's gpg-pubkey entries
// (imported keys, not packages), sorted as Query sorts.
func parseQuery(out string) []packager.Package {
	var pkgs []packager.Package
	for _, l := range strings.Split(out, "\n") {
		f := strings.Split(l, "\t")
		if len(f) != 3 || f[0] == "gpg-pubkey" {
			continue
		}
		// An unset epoch is "(none)" to rpm and 0 to dnf; both mean 0,
		// which the version leaves out.
		if e, v, ok := strings.Cut(f[1], ":"); ok && (e == "(none)" || e == "0") {
			f[1] = v
		}
		pkgs = append(pkgs, packager.Package{Name: f[0], Version: f[1], Arch: f[2]})
	}
	packager.SortPackages(pkgs)
	return pkgs
}

// Query lists root's packages with the host's rpm --root, from the rpm
// database where the root has it; the database's directory is checked to
// lie inside the root first.
func (Dnf) Query(ctx context.Context, root string) (_ []packager.Package, err error) {
	defer func() { err = rootfs.Explain(root, err) }()
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	db := dbPath(r)
	if _, err := r.Stat(db[1:]); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil // nothing installed yet
		}
		return nil, fmt.Errorf("list packages of %s: %w", root, err)
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "rpm", "--root", root, "--dbpath", db, "-qa", "--qf", queryFormat)
	cmd.Env = hostEnv(nil)
	cmd.Stdout = &out
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("list packages of %s: rpm: %w: %s", root, err, strings.TrimSpace(stderr.String()))
	}
	return parseQuery(out.String()), nil
}

// dbPath returns where root's rpm database is: the sysimage directory when
// it holds one, else /var/lib/rpm.
func dbPath(r *os.Root) string {
	for _, f := range []string{"rpmdb.sqlite", "Packages", "Packages.db"} {
		if fi, err := r.Stat(sysimageDBPath[1:] + "/" + f); err == nil && fi.Mode().IsRegular() {
			if li, err := r.Lstat("var/lib/rpm"); err != nil || li.Mode()&fs.ModeSymlink != 0 {
				return sysimageDBPath
			}
		}
	}
	return bootstrapDBPath
}

// ConfigureRepos renames the root's /etc/yum.repos.d/*.repo to
// *.repo.disabled and writes vzpkg.repo with the spec's repositories, their
// baseurls (metalinks and mirrorlists replaced by them) and keys through
// cacher. With cacher nil the root keeps the files its packages installed.
func (Dnf) ConfigureRepos(_ context.Context, root string, spec *packager.Spec, cacher *url.URL) (err error) {
	defer func() { err = rootfs.Explain(root, err) }()
	if cacher == nil {
		return nil
	}
	keys := func(r packager.Repo) ([]string, error) {
		var urls []string
		for _, k := range spec.RepoKeys(r) {
			k, _, _ = strings.Cut(k, "#") // a pin (checked by the build): not for dnf
			if !strings.HasPrefix(k, "http://") && !strings.HasPrefix(k, "https://") {
				return nil, fmt.Errorf("key %s of repository %s: a container reaches keys through pkg-cacher, so they must be http(s) URLs", k, r.Name)
			}
			urls = append(urls, packager.ThroughCacher(cacher, k))
		}
		return urls, nil
	}
	content, err := repoConfig(spec, cacher, keys)
	if err != nil {
		return err
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.MkdirAll(path.Dir(repoFile), 0o755); err != nil {
		return err
	}
	files, err := fs.Glob(r.FS(), "etc/yum.repos.d/*.repo")
	if err != nil {
		return err
	}
	for _, f := range files {
		if f == repoFile {
			if data, err := r.ReadFile(f); err == nil && strings.HasPrefix(string(data), repoHeader) {
				continue
			}
		}
		if err := r.Rename(f, f+".disabled"); err != nil {
			return err
		}
	}
	return rootfs.WriteFile(r, repoFile, []byte(repoHeader+content), 0o644)
}

// Dummy builds a dummy .rpm.
func (Dnf) Dummy(ctx context.Context, dir string, _ *packager.Spec, d packager.Dummy) (string, error) {
	return dummy.RPM(ctx, dir, tmpl.Dummy{Name: d.Name, Version: d.Version, Provides: d.Provides})
}

var (
	repoID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]*$`)
	// safeValue is a value for a repository file: printable, one line,
	// nothing dnf would expand.
	safeValue = regexp.MustCompile(`^[!-#%-~]+$`)
)

// repoConfig renders spec's repositories as a dnf repository file, each
// URL through cacher when it is not nil. keys gives the gpgkey URLs of a
// repository.
func repoConfig(spec *packager.Spec, cacher *url.URL, keys func(packager.Repo) ([]string, error)) (string, error) {
	var b strings.Builder
	for _, r := range spec.Repos {
		if !repoID.MatchString(r.Name) {
			return "", fmt.Errorf("repository name %q: want letters, digits and ._:-", r.Name)
		}
		for _, u := range append(slices.Clone(r.Mirrors), r.Metalink, r.Mirrorlist) {
			if u != "" && !safeValue.MatchString(u) {
				return "", fmt.Errorf("repository %s: URL %q holds spaces, control characters or $", r.Name, u)
			}
		}
		fmt.Fprintf(&b, "\n[%s]\nname=%s\n", r.Name, r.Name)
		switch {
		case len(r.Mirrors) > 0:
			var urls []string
			for _, m := range r.Mirrors {
				if cacher != nil {
					m = packager.ThroughCacher(cacher, m)
				}
				urls = append(urls, m)
			}
			fmt.Fprintf(&b, "baseurl=%s\n", strings.Join(urls, "\n        "))
		case cacher != nil:
			return "", fmt.Errorf("repository %s has no mirrors: through pkg-cacher dnf needs baseurls (a metalink's mirrors are fetched directly)", r.Name)
		case r.Metalink != "":
			fmt.Fprintf(&b, "metalink=%s\n", r.Metalink)
		case r.Mirrorlist != "":
			fmt.Fprintf(&b, "mirrorlist=%s\n", r.Mirrorlist)
		default:
			return "", fmt.Errorf("repository %s has no mirrors, metalink or mirrorlist", r.Name)
		}
		k, err := keys(r)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "enabled=1\n")
		if len(k) == 0 {
			return "", fmt.Errorf("repository %s has no signing key: add keys: to the template (vzpkg checks every package's signature)", r.Name)
		}
		fmt.Fprintf(&b, "gpgcheck=1\ngpgkey=%s\n", strings.Join(k, "\n       "))
	}
	return b.String(), nil
}

// session is one dnf configuration for a root: a private directory on the
// host with dnf.conf, the repository file, the keys and an rpm macros file,
// and a private directory inside the root for dnf's downloads and log.
type session struct {
	root    string
	env     packager.Env
	spec    *packager.Spec
	dir     string   // private, on the host
	inRoot  string   // private, in the root: "/var/tmp/vzpkg-dnf-…"
	hostLog string   // inRoot's path on the host, for the log dnf opens there
	args    []string // dnf's options
	mounts  *rootfs.Mounts
	rootDir *os.Root
}

func withSession(ctx context.Context, root string, spec *packager.Spec, env packager.Env, fn func(*session) error) (err error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	db := dbPath(r)
	r.Close()
	s, err := newSession(ctx, root, spec, env, db)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.close()) }()
	return fn(s)
}

func newSession(ctx context.Context, root string, spec *packager.Spec, env packager.Env, db string) (_ *session, err error) {
	if spec.Releasever == "" {
		return nil, fmt.Errorf("%s: a dnf template needs releasever", spec.Name)
	}
	forceArch, err := archOption(spec.Arch)
	if err != nil {
		return nil, err
	}
	s := &session{root: root, env: env, spec: spec}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.close())
		}
	}()
	if s.dir, err = os.MkdirTemp("", "vzpkg-dnf-"); err != nil {
		return nil, err
	}
	for _, d := range []string{"repos", "vars", "keys", "home"} {
		if err := os.Mkdir(filepath.Join(s.dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	// The places dnf and rpm write to in the root are made real
	// directories inside it first: a link there leading out fails here.
	if s.rootDir, err = os.OpenRoot(root); err != nil {
		return nil, err
	}
	// dnf puts its cache and logs under the installroot, in a directory of
	// the session's there; but it opens one log (hawkey.log) before it reads
	// its configuration, at the same path on the host: that one is made
	// private on the host too.
	s.inRoot = "/var/tmp/" + filepath.Base(s.dir)
	if err := os.Mkdir(s.inRoot, 0o700); err != nil {
		return nil, err
	}
	s.hostLog = s.inRoot
	if err := os.Mkdir(filepath.Join(s.inRoot, "log"), 0o700); err != nil {
		return nil, err
	}
	for _, d := range []string{s.inRoot[1:] + "/cache", s.inRoot[1:] + "/log", "var/lib/dnf", db[1:]} {
		if err := s.rootDir.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := s.rootDir.Chmod(s.inRoot[1:], 0o700); err != nil {
		return nil, err
	}

	fetched := map[string]string{}
	keys := func(r packager.Repo) ([]string, error) {
		var urls []string
		for _, k := range spec.RepoKeys(r) {
			if _, ok := fetched[k]; !ok {
				p, err := s.fetchKey(ctx, k, len(fetched))
				if err != nil {
					return nil, err
				}
				fetched[k] = p
			}
			urls = append(urls, "file://"+fetched[k])
		}
		return urls, nil
	}
	repos, err := repoConfig(spec, env.Cacher, keys)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(s.dir, "repos", "vzpkg.repo"), []byte(repos), 0o600); err != nil {
		return nil, err
	}
	// rpm reads ~/.rpmmacros: the database goes where the root's rpm reads it
	// (Debian's rpm would put it in ~/.rpmdb).
	if err := os.WriteFile(filepath.Join(s.dir, "home", ".rpmmacros"), []byte("%_dbpath "+db+"\n"), 0o600); err != nil {
		return nil, err
	}
	weak := "0"
	if spec.WeakDeps {
		weak = "1"
	}
	conf := fmt.Sprintf("[main]\nplugins=0\ngpgcheck=1\nlocalpkg_gpgcheck=0\nrepo_gpgcheck=0\ninstall_weak_deps=%s\nskip_if_unavailable=0\nkeepcache=0\nbest=1\n", weak)
	if spec.NoDocs {
		conf += "tsflags=nodocs\n"
	}
	if err := os.WriteFile(filepath.Join(s.dir, "dnf.conf"), []byte(conf), 0o600); err != nil {
		return nil, err
	}
	s.args = []string{
		"--config=" + filepath.Join(s.dir, "dnf.conf"),
		"--installroot=" + root,
		"--releasever=" + spec.Releasever,
		"--setopt=reposdir=" + filepath.Join(s.dir, "repos"),
		"--setopt=varsdir=" + filepath.Join(s.dir, "vars"),
		"--setopt=cachedir=" + s.inRoot + "/cache",
		"--setopt=logdir=" + s.inRoot + "/log",
		"--setopt=install_weak_deps=" + weak,
		"--setopt=gpgcheck=1",
		"--noplugins", "--assumeyes",
	}
	if spec.NoDocs {
		s.args = append(s.args, "--nodocs")
	}
	if forceArch != "" {
		s.args = append(s.args, "--forcearch="+forceArch)
	}
	if !env.Verbose {
		s.args = append(s.args, "--quiet")
	}
	if s.mounts, err = rootfs.MountAPI(root); err != nil {
		return nil, err
	}
	return s, nil
}

// close unmounts what the session mounted and removes its private
// directories.
func (s *session) close() error {
	var errs []error
	if s.mounts != nil {
		errs = append(errs, s.mounts.Unmount())
		s.mounts = nil
	}
	if s.rootDir != nil {
		if s.inRoot != "" {
			errs = append(errs, s.rootDir.RemoveAll(s.inRoot[1:]))
		}
		errs = append(errs, s.rootDir.Close())
		s.rootDir = nil
	}
	if s.dir != "" {
		errs = append(errs, os.RemoveAll(s.dir))
		s.dir = ""
	}
	if s.hostLog != "" {
		errs = append(errs, os.RemoveAll(s.hostLog))
		s.hostLog = ""
	}
	return errors.Join(errs...)
}

// dnf runs dnf with the session's options and args, its output to env.Output.
func (s *session) dnf(ctx context.Context, args ...string) error {
	return s.dnfOut(ctx, nil, args...)
}

// dnfOut runs dnf as dnf does, its standard output to stdout when not nil.
func (s *session) dnfOut(ctx context.Context, stdout io.Writer, args ...string) error {
	cmd := exec.CommandContext(ctx, "dnf", append(slices.Clone(s.args), args...)...)
	cmd.Env = hostEnv([]string{"HOME=" + filepath.Join(s.dir, "home")})
	return runCmd(ctx, s.env, cmd, stdout)
}

// maxKey bounds a signing key's size.
const maxKey = 1 << 20

// fetchKey gets the key at k (an http(s) URL, fetched through the session's
// cacher; a file:// URL or a path on the host) into the private directory,
// checked against the fingerprints it pins (see pinned).
func (s *session) fetchKey(ctx context.Context, pin string, n int) (string, error) {
	dst := filepath.Join(s.dir, "keys", fmt.Sprintf("%d.asc", n))
	k, fps, err := pinned(pin)
	if err != nil {
		return "", err
	}
	var data []byte
	switch {
	case strings.HasPrefix(k, "http://"), strings.HasPrefix(k, "https://"):
		u := k
		if s.env.Cacher != nil {
			u = packager.ThroughCacher(s.env.Cacher, k)
		}
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return "", err
		}
		client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
		resp, err := client.Do(req)
		if err != nil {
			return "", fmt.Errorf("fetch key %s: %w", k, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("fetch key %s: %s from %s", k, resp.Status, u)
		}
		if data, err = io.ReadAll(io.LimitReader(resp.Body, maxKey+1)); err != nil {
			return "", fmt.Errorf("fetch key %s: %w", k, err)
		}
	default:
		p := strings.TrimPrefix(k, "file://")
		if !filepath.IsAbs(p) {
			return "", fmt.Errorf("key %q: want an http(s) or file:// URL or an absolute path", k)
		}
		if data, err = os.ReadFile(p); err != nil {
			return "", fmt.Errorf("read key: %w", err)
		}
	}
	if len(data) > maxKey || !bytes.Contains(data, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")) {
		return "", fmt.Errorf("key %s is not an ASCII-armored OpenPGP public key", k)
	}
	if fps != nil {
		if err := checkPinned(k, data, fps); err != nil {
			return "", err
		}
	}
	return dst, os.WriteFile(dst, data, 0o600)
}

// archOption returns dnf's --forcearch for building arch on this host: ""
// for the host's own architecture; another one needs qemu-user-static.
func archOption(arch string) (string, error) {
	if foreign, err := packager.CheckArch(arch); !foreign || err != nil {
		return "", err
	}
	return arch, nil
}

// hooks runs the spec's hooks of the given phases with the root's path.
func hooks(ctx context.Context, env packager.Env, spec *packager.Spec, root string, phases ...tmpl.Phase) error {
	for _, ph := range phases {
		for _, h := range spec.Hooks[string(ph)] {
			cmd := exec.CommandContext(ctx, h, root)
			cmd.Env = hostEnv(nil)
			if err := runCmd(ctx, env, cmd, nil); err != nil {
				return fmt.Errorf("%s hook: %w", ph, err)
			}
		}
	}
	return nil
}

// hostEnv is the environment of the host's programs vzpkg runs for dnf: the
// process's without proxies (dnf goes through pkg-cacher in the URLs) and
// with a fixed locale, plus vars.
func hostEnv(vars []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasSuffix(strings.ToLower(k), "_proxy") || k == "HOME" || k == "LANG" || k == "LANGUAGE" || strings.HasPrefix(k, "LC_") {
			continue
		}
		env = append(env, kv)
	}
	return append(append(env, "LC_ALL=C.UTF-8"), vars...)
}

// runCmd runs cmd (made with exec.CommandContext(ctx, ...)) with
// packager.Run, its standard output to stdout when not nil. A cancelled
// command has a minute to stop: rpm finishes the transaction it is in.
func runCmd(ctx context.Context, env packager.Env, cmd *exec.Cmd, stdout io.Writer) error {
	what := strings.Join(append([]string{filepath.Base(cmd.Args[0])}, opArgs(cmd.Args[1:])...), " ")
	return packager.Run(ctx, env, cmd, what, stdout, 60*time.Second)
}

// opArgs leaves out the options vzpkg always gives, for messages.
func opArgs(args []string) []string {
	var out []string
	for _, a := range args {
		if !strings.HasPrefix(a, "--") {
			out = append(out, a)
		}
	}
	return out
}
