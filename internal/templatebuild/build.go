// Package build creates, updates and removes cached OS templates: resolve a
// definition → bootstrap into a private directory beside the cache (the root
// itself on a tmpfs mounted there, when memory allows) → dummy packages →
// fixups → repository configuration → reproducible tarball, checksum and
// package manifest → publish, atomic for the whole set of files. One run at
// a time works on a template in a cache directory (lock.go). A failed or
// interrupted build leaves no output file, no private directory and no
// mount behind; the private directory of a killed one is removed by the
// next run on the template.
package templatebuild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"vzpkg2/internal/atomicfile"
	"vzpkg2/internal/container"
	"vzpkg2/internal/packager"
	"vzpkg2/internal/rootfs"
	"vzpkg2/internal/tmpl"
)

// Options are the settings of one build.
type Options struct {
	CacheDir    string        // where templates are published
	Cacher      *url.URL      // pkg-cacher to build through; nil fetches from the mirrors
	Format      string        // compression: "gz" (default), "xz" or "zst"
	Epoch       time.Time     // SOURCE_DATE_EPOCH: file times are clamped to it; zero keeps them
	Progress    Progress      // nil reports nothing
	Verbose     bool          // ask the package manager for details
	NoWait      bool          // fail at once when another run works on the template
	HookTimeout time.Duration // how long a final hook may run; 0: no limit
	Waiting     io.Writer     // told when the run waits for another one; nil tells no one

	// fault, when set (by tests only), is called at each step of a publish
	// (see publish); an error stops the publish there, as a kill would.
	fault func(step string) error
}

// Progress receives a build's progress.
type Progress interface {
	Phase(name string)  // a new phase begins
	Output() io.Writer  // the package manager's output
	Packed(bytes int64) // compressed bytes written so far
}

// Result describes a published (or, for an unchanged update, existing) template.
type Result struct {
	Path     string
	SHA256   string
	Packages []packager.Package
	Changed  bool     // a new file was published
	Diff     []string // update: the manifest changes, "+ name version", "- ...", "~ name old -> new"
}

// Create builds def and publishes it in opt.CacheDir, replacing an existing
// template of the same name (kept as NAME.tar.EXT-old).
func Create(ctx context.Context, def *tmpl.Definition, opt Options) (res *Result, err error) {
	defer interrupted(ctx, def.Name, &err)
	unlock, err := lockTemplate(ctx, def.Name, opt)
	if err != nil {
		return nil, err
	}
	defer unlock()
	b, err := start(def, opt)
	if err != nil {
		return nil, err
	}
	defer b.cleanup(&err)
	dummies, err := b.dummies(ctx)
	if err != nil {
		return nil, err
	}
	b.phase("bootstrap")
	env := b.env(dummies)
	if err := b.pkgr.Bootstrap(ctx, b.root, def, env); err != nil {
		return nil, fmt.Errorf("bootstrap %s: %w", def.Name, b.rootErr(err))
	}
	return b.finish(ctx)
}

// Update brings the published template def up to date: it checks the
// tarball against its checksum, unpacks it, checks the manifest against the
// template's own package database, upgrades its packages and installs what
// the definition gained, and publishes a new file (the previous one kept as
// NAME.tar.EXT-old) only when the packages changed.
func Update(ctx context.Context, def *tmpl.Definition, opt Options) (res *Result, err error) {
	defer interrupted(ctx, def.Name, &err)
	if fi, err := os.Stat(opt.CacheDir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%s is not in %s: create it with vzpkg create cache %s", def.Name, opt.CacheDir, def.Name)
	}
	unlock, err := lockTemplate(ctx, def.Name, opt)
	if err != nil {
		return nil, err
	}
	defer unlock()
	old, ok := Find(opt.CacheDir, def.Name)
	if !ok {
		return nil, fmt.Errorf("%s is not in %s: create it with vzpkg create cache %s", def.Name, opt.CacheDir, def.Name)
	}
	if err := verifyChecksum(old, def.Name); err != nil {
		return nil, err
	}
	if opt.Format == "" {
		opt.Format = formatOf(old)
	}
	b, err := start(def, opt)
	if err != nil {
		return nil, err
	}
	defer b.cleanup(&err)
	b.phase("unpack")
	if err := unpack(ctx, old, b.root); err != nil {
		return nil, b.rootErr(err)
	}
	// What is installed comes from the template's own package database;
	// the manifest must say the same, or it was edited.
	before, err := b.pkgr.Query(ctx, b.root)
	if err != nil {
		return nil, err
	}
	if err := checkManifest(manifestPath(old), old, before, def.Name); err != nil {
		return nil, err
	}
	dummies, err := b.dummies(ctx)
	if err != nil {
		return nil, err
	}
	b.phase("update")
	if err := b.pkgr.Update(ctx, b.root, def, b.env(dummies)); err != nil {
		return nil, fmt.Errorf("update %s: %w", def.Name, b.rootErr(err))
	}
	after, err := b.pkgr.Query(ctx, b.root)
	if err != nil {
		return nil, err
	}
	diff := packager.Diff(before, after)
	if len(diff) == 0 && formatOf(old) == opt.Format {
		sum, _ := os.ReadFile(old + ".sha256")
		return &Result{Path: old, SHA256: firstField(string(sum)), Packages: after}, nil
	}
	res, err = b.finish(ctx)
	if err != nil {
		return nil, err
	}
	res.Diff = diff
	return res, nil
}

// interrupted replaces *err by "NAME: interrupted" when ctx was cancelled
// (SIGINT, SIGTERM): whatever a killed child said then ("dpkg-deb: signal:
// killed") is a consequence, not the cause.
func interrupted(ctx context.Context, name string, err *error) {
	if *err != nil && ctx.Err() != nil {
		*err = fmt.Errorf("%s: interrupted (%w)", name, context.Cause(ctx))
	}
}

// builder is one build's state: its private directory and packager.
type builder struct {
	def  *tmpl.Definition
	opt  Options
	pkgr specPackager
	work string // private directory on the cache's file system
	root string // work/root: the template's tree

	ramRoot int64 // size of the tmpfs mounted on root; 0: root is on the cache's file system

	compressor []string // command line of the compressor
}

// buildUmask is the umask of a build. The caller's must not reach the
// template: under 077, dpkg-deb refuses the dummies' control directory, and
// files written by vzpkg, mmdebstrap, dpkg and apt would get other modes (and
// the tarball another checksum); the published files would be unreadable to
// the container tools.
const buildUmask = 0o022

// start sets the process's umask to buildUmask (for vzpkg and every program
// it runs; every build of the process wants the same) and makes the private
// directory of a build.
func start(def *tmpl.Definition, opt Options) (*builder, error) {
	unix.Umask(buildUmask)
	pkgr, err := packagerFor(def)
	if err != nil {
		return nil, err
	}
	// A build runs the packages' programs: refuse, before anything is
	// fetched or made, an architecture this host cannot run.
	if _, err := packager.CheckArch(def.Arch); err != nil {
		return nil, fmt.Errorf("%s: %w", def.Name, err)
	}
	if opt.Format == "" {
		opt.Format = "gz"
	}
	argv, err := compressor(opt.Format)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(opt.CacheDir, privatePrefix(def.Name))
	if err != nil {
		return nil, err
	}
	root := filepath.Join(work, "root")
	// apt downloads as the unprivileged _apt user: it must reach the root.
	if err := errors.Join(os.Chmod(work, 0o755), os.Mkdir(root, 0o755)); err != nil {
		os.RemoveAll(work)
		return nil, err
	}
	b := &builder{def: def, opt: opt, pkgr: pkgr, work: work, root: root, compressor: argv}
	if size := ramRootSize(); size > 0 && rootfs.MountTmpfs(root, size) == nil {
		b.ramRoot = size
	}
	return b, nil
}

// minRAMForRoot is the available memory above which a build root goes in
// memory.
const minRAMForRoot = 2 << 30

// ramRootSize returns the size of the tmpfs a build root goes on: half the
// memory available, when that is at least minRAMForRoot; 0 builds on the
// cache's file system. Only the tarball has to reach the disk: the root is
// scratch, and dpkg writes (and the cleanup removes) its thousands of files
// several times faster in memory, with no journal and no fsync.
func ramRootSize() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil || kb<<10 < minRAMForRoot {
				return 0
			}
			return kb << 10 / 2
		}
	}
	return 0
}

// rootErr adds to a package manager's error that the root in memory is full,
// when it is.
func (b *builder) rootErr(err error) error {
	var st unix.Statfs_t
	if b.ramRoot > 0 && unix.Statfs(b.root, &st) == nil && st.Bavail*uint64(st.Bsize) < 1<<20 {
		return fmt.Errorf("%w\n(the build root is a tmpfs of %d MiB, half the memory available, and it is full)", err, b.ramRoot>>20)
	}
	return err
}

// cleanup detaches anything still mounted in the private directory and
// removes it; it never removes a directory that still has mounts under it.
// What it could not do is added to *err (when err is not nil): the caller
// reports it, the library writes no output of its own.
func (b *builder) cleanup(err *error) {
	if cerr := removePrivate(b.work); cerr != nil && err != nil {
		*err = errors.Join(*err, cerr)
	}
}

// removePrivate detaches anything mounted in a private directory and
// removes it; it never removes a directory that still has mounts under it,
// so it never reaches into a mounted file system (a bind of the host's /dev).
func removePrivate(work string) error {
	if err := rootfs.UnmountUnder(work); err != nil {
		return fmt.Errorf("%w; left %s in place", err, work)
	}
	if left, _ := rootfs.MountsUnder(work); len(left) > 0 {
		return fmt.Errorf("%s is still mounted; left %s in place", left[0], work)
	}
	return os.RemoveAll(work)
}

// privatePrefix begins the name of a private directory of template name;
// os.MkdirTemp adds decimal digits.
func privatePrefix(name string) string { return ".vzpkg-" + name + "-" }

// removeStale removes the private directories of template name in dir that
// builds killed before their cleanup left. It is called with the template's
// lock held, so no live run owns one of them.
func removeStale(dir, name string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), privatePrefix(name))
		if !ok || rest == "" || strings.Trim(rest, "0123456789") != "" || !e.IsDir() {
			continue // not ours: another template's, whose name goes on after ours
		}
		errs = append(errs, removePrivate(filepath.Join(dir, e.Name())))
	}
	return errors.Join(errs...)
}

func (b *builder) phase(name string) {
	if b.opt.Progress != nil {
		b.opt.Progress.Phase(name)
	}
}

func (b *builder) env(dummies []string) packager.Env {
	env := packager.Env{Cacher: b.opt.Cacher, Dummies: dummies, Verbose: b.opt.Verbose}
	if b.opt.Progress != nil {
		env.Output = b.opt.Progress.Output()
	}
	return env
}

// dummies builds the definition's dummy packages in the private directory.
func (b *builder) dummies(ctx context.Context) ([]string, error) {
	if len(b.def.Dummies) == 0 {
		return nil, nil
	}
	b.phase("dummy packages")
	dir := filepath.Join(b.work, "dummies")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	for _, d := range b.def.Dummies {
		p, err := b.pkgr.Dummy(ctx, dir, d)
		if err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// finish applies fixups, repository configuration and final hooks, then
// packs and publishes, with the manifest read from the root's package
// database as it is packed.
func (b *builder) finish(ctx context.Context) (*Result, error) {
	b.phase("fixups")
	if err := rootfs.Fixup(b.root, b.def.Fixups); err != nil {
		return nil, err
	}
	var cacher *url.URL
	if b.def.UseCacher {
		cacher = b.opt.Cacher
	}
	if err := b.pkgr.ConfigureRepos(b.root, b.def, cacher); err != nil {
		return nil, fmt.Errorf("configure repositories: %w", err)
	}
	if err := container.WriteRecord(b.root, b.pkgr.name, b.pkgr.spec); err != nil {
		return nil, fmt.Errorf("record the packager: %w", err)
	}
	for _, h := range b.def.Hooks[tmpl.PhaseFinal] {
		b.phase("hook " + h)
		if err := runHook(ctx, h, b.root, b.work, b.opt.HookTimeout, b.opt.Progress); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pkgs, err := b.pkgr.Query(ctx, b.root)
	if err != nil {
		return nil, err
	}
	b.phase("pack")
	return b.publish(ctx, pkgs)
}

// hookOutputLines is how many of its last lines of output a failing hook's
// error carries.
const hookOutputLines = 20

// runHook runs a final hook on root in a process group of its own, and
// kills the whole group when the hook has exited (a process it left in the
// background must not outlive the build or change the root while it is
// packed), when ctx is done, and after timeout (hook_timeout; 0: none).
// The hook's output goes to a file in the private directory, not a pipe, so
// that a process left holding it open cannot keep the build waiting; it is
// passed on to p when the hook is done, and the last lines of it are in the
// error of a failing hook. (A process that leaves the group with setsid
// escapes this.)
func runHook(ctx context.Context, hook, root, work string, timeout time.Duration, p Progress) error {
	hookCtx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		hookCtx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	out, err := os.CreateTemp(work, "hook-output-")
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.CommandContext(hookCtx, hook, root)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return unix.Kill(-cmd.Process.Pid, unix.SIGKILL) }
	err = cmd.Run()
	if cmd.Process != nil {
		unix.Kill(-cmd.Process.Pid, unix.SIGKILL) // what the hook left behind; ESRCH when nothing
	}
	output, _ := os.ReadFile(out.Name())
	if p != nil {
		p.Output().Write(output)
	}
	switch {
	case err == nil:
		return nil
	case ctx.Err() == nil && hookCtx.Err() != nil:
		return fmt.Errorf("final hook %s did not finish within %v (hook_timeout)%s", hook, timeout, lastLines(output, hookOutputLines))
	}
	return fmt.Errorf("final hook %s: %w%s", hook, err, lastLines(output, hookOutputLines))
}

// lastLines returns the last n lines of out, indented under a line break,
// or "" when there are none.
func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return ""
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return ":\n    " + strings.Join(lines, "\n    ")
}

// Find returns the published template file of name in dir.
func Find(dir, name string) (string, bool) {
	for _, f := range Formats() {
		p := filepath.Join(dir, name+".tar."+f)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, true
		}
	}
	return "", false
}

// Remove deletes the published template name from dir: every file of its
// set in every format (tarball, checksum, manifest and their -old versions).
// It holds the template's lock as a build does, so it never removes a
// template under a running build.
func Remove(ctx context.Context, name string, opt Options) (err error) {
	defer interrupted(ctx, name, &err)
	if err := tmpl.CheckName(name); err != nil {
		return err
	}
	if fi, err := os.Stat(opt.CacheDir); err != nil || !fi.IsDir() {
		return fmt.Errorf("%s is not in %s", name, opt.CacheDir)
	}
	unlock, err := lockTemplate(ctx, name, opt)
	if err != nil {
		return err
	}
	defer unlock()
	found := false
	var errs []error
	for _, n := range setNames(name) {
		err := os.Remove(filepath.Join(opt.CacheDir, n))
		switch {
		case err == nil:
			found = true
		case !errors.Is(err, os.ErrNotExist):
			errs = append(errs, err)
		}
	}
	if !found && len(errs) == 0 {
		return fmt.Errorf("%s is not in %s", name, opt.CacheDir)
	}
	if found {
		errs = append(errs, atomicfile.SyncDir(opt.CacheDir))
	}
	return errors.Join(errs...)
}
