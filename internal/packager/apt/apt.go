// Package apt builds and updates Debian and Ubuntu roots: mmdebstrap
// bootstraps them, apt-get in a chroot updates them, dpkg-query lists them.
package apt

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"vzpkg2/internal/dummy"
	"vzpkg2/internal/packager"
	"vzpkg2/internal/rootfs"
	"vzpkg2/internal/tmpl"
)

// Apt is the apt packager. The zero value is ready to use.
type Apt struct{}

var _ packager.Packager = Apt{}

const (
	hookDir = "/usr/share/mmdebstrap/hooks"
	// mmdebstrapConf is where mmdebstrap leaves its --aptopt settings; a build
	// uses it only for the proxy, which the template must not keep.
	mmdebstrapConf = "etc/apt/apt.conf.d/99mmdebstrap"
	// sourcesHeader starts a sources.list written by vzpkg.
	sourcesHeader = "# Written by vzpkg: repositories through pkg-cacher. The distribution's own\n# configuration is kept beside this file as *.disabled.\n"
)

// Bootstrap runs mmdebstrap in root mode into root; debootstrap when the
// definition asks for it or mmdebstrap is not installed.
func (a Apt) Bootstrap(ctx context.Context, root string, def *tmpl.Definition, env packager.Env) error {
	filters, err := pathFilters(def)
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil || def.Bootstrap == "debootstrap" {
		return a.debootstrap(ctx, root, def, env, filters)
	}
	args := []string{"--mode=root", "--format=directory", "--variant=" + def.Variant, "--architectures=" + def.ArchName}
	if len(filters) > 0 {
		// The excludes file goes in before mmdebstrap starts, so dpkg reads
		// it from the first package it installs. (--dpkgopt would also pipe
		// the extraction of the essential packages through mmtarfilter, which
		// takes longer than the rest of the extraction; prune removes what
		// that extraction left instead.)
		if err := writeExcludes(root, filters); err != nil {
			return err
		}
		args = append(args, "--skip=check/empty")
	}
	if env.Verbose {
		args = append(args, "--verbose")
	}
	if len(def.Packages) > 0 {
		args = append(args, "--include="+strings.Join(def.Packages, ","))
	}
	for _, d := range env.Dummies {
		args = append(args, "--include="+d)
	}
	if len(env.Dummies) > 0 {
		args = append(args, "--hook-dir="+hookDir+"/file-mirror-automount")
	}
	if slices.Contains(def.Packages, "usr-is-merged") {
		// The set asks for a merged /usr: lay it out before the essential
		// packages as debootstrap does, or apt satisfies init-system-helpers'
		// "usrmerge | usr-is-merged" with usrmerge, and with it all of perl.
		// The hook's setup part installs a stand-in usr-is-merged; its
		// essential part, a separate apt-get run, would replace it with the
		// real package, which the set's own installation does anyway.
		args = append(args, "--setup-hook="+hookDir+"/merged-usr/setup00.sh")
	}
	if _, err := exec.LookPath("eatmydata"); err == nil && !rootfs.OnTmpfs(root) {
		// Skipping fsync inside the root is safe: vzpkg packs and syncs the
		// result itself. On a tmpfs fsync costs nothing, and the hook would.
		args = append(args, "--hook-dir="+hookDir+"/eatmydata")
	}
	// The gzip indexes: apt decompresses them several times faster than the
	// xz ones it prefers, and pkg-cacher serves either size as fast.
	args = append(args, `--aptopt=Acquire::CompressionTypes::Order:: "gz"`)
	for _, k := range def.Keys {
		args = append(args, "--keyring="+k)
	}
	if env.Cacher != nil {
		args = append(args, fmt.Sprintf("--aptopt=Acquire::http::Proxy %q", env.Cacher.String()))
	}
	for _, phase := range []tmpl.Phase{tmpl.PhaseSetup, tmpl.PhaseExtract, tmpl.PhaseEssential, tmpl.PhaseCustomize} {
		for _, h := range def.Hooks[phase] {
			args = append(args, fmt.Sprintf("--%s-hook=%s", phase, h))
		}
	}
	args = append(args, def.Suite, root)
	args = append(args, sourcesLines(def, nil)...)
	if err := run(ctx, env, "mmdebstrap", args...); err != nil {
		return err
	}
	if err := removeIfExists(filepath.Join(root, mmdebstrapConf)); err != nil {
		return err
	}
	return prune(root, filters)
}

// debootstrap bootstraps the variant's base system (minbase, or debootstrap's
// default for other variants) with debootstrap, then installs the set and the
// dummy packages as Update does. Setup hooks run before debootstrap, extract
// and essential hooks after it, customize hooks at the end. The path filters
// are in place before debootstrap; Update removes what its extraction left.
func (a Apt) debootstrap(ctx context.Context, root string, def *tmpl.Definition, env packager.Env, filters []pathFilter) error {
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return fmt.Errorf("neither mmdebstrap nor debootstrap is installed: install one (apt-get install mmdebstrap)")
	}
	if len(def.Repos) == 0 || len(def.Repos[0].Mirrors) == 0 {
		return fmt.Errorf("%s has no repository to bootstrap from", def.Name)
	}
	hooks := func(phases ...tmpl.Phase) error {
		for _, ph := range phases {
			for _, h := range def.Hooks[ph] {
				if err := run(ctx, env, h, root); err != nil {
					return fmt.Errorf("%s hook: %w", ph, err)
				}
			}
		}
		return nil
	}
	if err := writeExcludes(root, filters); err != nil {
		return err
	}
	if err := hooks(tmpl.PhaseSetup); err != nil {
		return err
	}
	args := []string{"--arch=" + def.ArchName, "--components=" + strings.Join(def.Repos[0].Components, ",")}
	if def.Variant == "minbase" {
		args = append(args, "--variant=minbase")
	}
	if len(def.Keys) > 0 {
		args = append(args, "--keyring="+def.Keys[0])
	}
	if env.Verbose {
		args = append(args, "--verbose")
	}
	args = append(args, def.Suite, root, def.Repos[0].Mirrors[0])
	if env.Cacher != nil {
		// debootstrap downloads with wget, which takes the proxy from the environment.
		if err := runEnv(ctx, env, []string{"http_proxy=" + env.Cacher.String()}, "debootstrap", args...); err != nil {
			return err
		}
	} else if err := run(ctx, env, "debootstrap", args...); err != nil {
		return err
	}
	if err := hooks(tmpl.PhaseExtract, tmpl.PhaseEssential); err != nil {
		return err
	}
	sources := strings.Join(sourcesLines(def, nil), "\n") + "\n"
	if err := os.WriteFile(filepath.Join(root, "etc/apt/sources.list"), []byte(sources), 0o644); err != nil {
		return err
	}
	if err := a.Update(ctx, root, def, env); err != nil {
		return err
	}
	return hooks(tmpl.PhaseCustomize)
}

// Update runs apt-get in a chroot of root (with /proc and /dev mounted) from
// the definition's mirrors through env.Cacher, whatever the root's own
// sources say. The root's excludes file follows the definition's path
// filters first, and what they leave out goes at the end.
func (Apt) Update(ctx context.Context, root string, def *tmpl.Definition, env packager.Env) (err error) {
	filters, err := pathFilters(def)
	if err != nil {
		return err
	}
	if err := writeExcludes(root, filters); err != nil {
		return err
	}
	m, err := rootfs.MountAPI(root)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, m.Unmount()) }()

	if env.Cacher == nil {
		// Straight to the mirrors: the root needs the host's name servers meanwhile.
		restore, err := borrowFile(root, "/etc/resolv.conf")
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, restore()) }()
	}
	const list = "/var/lib/vzpkg-update.list"
	if err := os.WriteFile(filepath.Join(root, list), []byte(strings.Join(sourcesLines(def, nil), "\n")+"\n"), 0o644); err != nil {
		return err
	}
	defer os.Remove(filepath.Join(root, list))
	for _, d := range env.Dummies {
		if err := copyFile(d, filepath.Join(root, "tmp", filepath.Base(d))); err != nil {
			return err
		}
		defer os.Remove(filepath.Join(root, "tmp", filepath.Base(d)))
	}
	apt := []string{root, "apt-get", "-y", "-q",
		"-o", "Dir::Etc::SourceList=" + list, "-o", "Dir::Etc::SourceParts=/nonexistent",
		"-o", "APT::Install-Recommends=false", "-o", "Dpkg::Options::=--force-confold",
		"-o", "Acquire::CompressionTypes::Order::=gz"}
	if env.Cacher != nil {
		apt = append(apt, "-o", "Acquire::http::Proxy="+env.Cacher.String())
	}
	for _, k := range def.Keys {
		if err := copyFile(k, filepath.Join(root, "etc/apt/trusted.gpg.d", "vzpkg-update-"+filepath.Base(k))); err != nil {
			return err
		}
		defer os.Remove(filepath.Join(root, "etc/apt/trusted.gpg.d", "vzpkg-update-"+filepath.Base(k)))
	}
	install := slices.Clone(def.Packages)
	for _, d := range env.Dummies {
		install = append(install, "/tmp/"+filepath.Base(d))
	}
	for _, step := range [][]string{{"update"}, {"dist-upgrade"}, append([]string{"install"}, install...)} {
		if err := run(ctx, env, "chroot", append(apt, step...)...); err != nil {
			return err
		}
	}
	return prune(root, filters) // it stays off /proc and /dev, other file systems
}

// Query lists root's packages with the host's dpkg-query.
func (Apt) Query(ctx context.Context, root string) ([]packager.Package, error) {
	out, err := exec.CommandContext(ctx, "dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"),
		"-W", "-f", "${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n").Output()
	if err != nil {
		return nil, fmt.Errorf("list packages of %s: dpkg-query: %w", root, err)
	}
	var pkgs []packager.Package
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 4 || !strings.HasPrefix(f[0], "ii") {
			continue
		}
		pkgs = append(pkgs, packager.Package{Name: f[1], Version: f[2], Arch: f[3]})
	}
	slices.SortFunc(pkgs, func(a, b packager.Package) int {
		return strings.Compare(a.Name+"\x00"+a.Arch, b.Name+"\x00"+b.Arch)
	})
	return pkgs, nil
}

// ConfigureRepos renames the root's sources (sources.list, sources.list.d/*)
// to *.disabled and writes a sources.list with the same repositories through
// cacher. With cacher nil, the root keeps the mirrors mmdebstrap wrote.
func (Apt) ConfigureRepos(root string, def *tmpl.Definition, cacher *url.URL) error {
	if cacher == nil {
		return nil
	}
	etc := filepath.Join(root, "etc/apt")
	main := filepath.Join(etc, "sources.list")
	files, _ := filepath.Glob(filepath.Join(etc, "sources.list.d/*"))
	if data, err := os.ReadFile(main); err == nil && !strings.HasPrefix(string(data), sourcesHeader) {
		files = append(files, main)
	}
	for _, f := range files {
		if strings.HasSuffix(f, ".disabled") {
			continue
		}
		if err := os.Rename(f, f+".disabled"); err != nil {
			return err
		}
	}
	content := sourcesHeader + strings.Join(sourcesLines(def, cacher), "\n") + "\n"
	return os.WriteFile(main, []byte(content), 0o644)
}

// Dummy builds a dummy .deb.
func (Apt) Dummy(ctx context.Context, dir string, d tmpl.Dummy) (string, error) {
	return dummy.Deb(ctx, dir, d)
}

// sourcesLines renders the definition's repositories as one-line sources
// entries, each through cacher when it is not nil. apt uses the first mirror
// of each repository; the others are for pkg-cacher's path_map.
func sourcesLines(def *tmpl.Definition, cacher *url.URL) []string {
	var lines []string
	for _, r := range def.Repos {
		if len(r.Mirrors) == 0 {
			continue
		}
		mirror := r.Mirrors[0]
		if cacher != nil {
			mirror = ThroughCacher(cacher, mirror)
		}
		for _, s := range r.Suites {
			lines = append(lines, strings.Join(append([]string{"deb", mirror, s}, r.Components...), " "))
		}
	}
	return lines
}

// ThroughCacher rewrites a mirror URL to pkg-cacher's URL-prefix form:
// http://host/path becomes CACHER/host/path and https://host/path becomes
// CACHER/HTTPS///host/path.
func ThroughCacher(cacher *url.URL, mirror string) string {
	base := strings.TrimSuffix(cacher.String(), "/")
	if rest, ok := strings.CutPrefix(mirror, "https://"); ok {
		return base + "/HTTPS///" + rest
	}
	return base + "/" + strings.TrimPrefix(mirror, "http://")
}

// cancelGrace is how long a cancelled command has to clean up.
const cancelGrace = 10 * time.Second

// run runs a command, its output going to env.Output line by line. On
// cancellation the command's whole process group (mmdebstrap, its workers
// and the hook it runs) gets SIGTERM and cancelGrace to clean up
// (mmdebstrap unmounts what it mounted) before the command is killed; what
// is left of the group when the command is done is killed too.
func run(ctx context.Context, env packager.Env, name string, args ...string) error {
	return runEnv(ctx, env, nil, name, args...)
}

// runEnv is run with extra environment variables.
func runEnv(ctx context.Context, env packager.Env, vars []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	// Signalling only the command left a hook it ran (sleep in a customize
	// hook) running, and vzpkg waited for its output pipe the whole 60 s.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = cancelGrace
	// Its own process group: a terminal's Ctrl-C reaches vzpkg, which stops the command once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	defer func() {
		if cmd.Process != nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // ESRCH when nothing is left
		}
	}()
	cmd.Env = append(append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C.UTF-8"), vars...)
	tail := &tailWriter{max: 30}
	if env.Output != nil {
		cmd.Stdout = io.MultiWriter(env.Output, tail)
	} else {
		cmd.Stdout = tail
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s failed: %w\n%s", name, err, tail)
	}
	return nil
}

// borrowFile puts the host's file name into root (replacing a file or
// symlink there) and returns the function that puts root's own back.
func borrowFile(root, name string) (restore func() error, err error) {
	dst := filepath.Join(root, name)
	saved := dst + ".vzpkg-saved"
	had := false
	if _, err := os.Lstat(dst); err == nil {
		if err := os.Rename(dst, saved); err != nil {
			return nil, err
		}
		had = true
	}
	restore = func() error {
		if err := removeIfExists(dst); err != nil || !had {
			return err
		}
		return os.Rename(saved, dst)
	}
	if err := copyFile(name, dst); err != nil {
		return nil, errors.Join(err, restore())
	}
	return restore, nil
}

func removeIfExists(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}

// tailWriter keeps the last max lines written to it, for error messages.
type tailWriter struct {
	max   int
	lines []string
	part  string
}

func (t *tailWriter) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(strings.NewReader(t.part + string(p)))
	t.part = ""
	complete := strings.HasSuffix(string(p), "\n")
	var got []string
	for sc.Scan() {
		got = append(got, sc.Text())
	}
	if !complete && len(got) > 0 {
		t.part, got = got[len(got)-1], got[:len(got)-1]
	}
	t.lines = append(t.lines, got...)
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
	return len(p), nil
}

func (t *tailWriter) String() string { return strings.Join(append(t.lines, t.part), "\n") }
