// Package build creates, updates and removes cached OS templates: resolve a
// definition → bootstrap into a private directory beside the cache (the root
// itself on a tmpfs mounted there, when memory allows) → dummy packages →
// fixups → repository configuration → reproducible tarball, checksum and
// package manifest → atomic publish. A failed or interrupted build leaves no
// output file, no private directory and no mount behind.
package build

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
	"time"

	"golang.org/x/sys/unix"

	"vzpkg2/internal/container"
	"vzpkg2/internal/packager"
	"vzpkg2/internal/rootfs"
	"vzpkg2/internal/tmpl"
)

// Options are the settings of one build.
type Options struct {
	CacheDir string    // where templates are published
	Cacher   *url.URL  // pkg-cacher to build through; nil fetches from the mirrors
	Format   string    // compression: "gz" (default), "xz" or "zst"
	Epoch    time.Time // SOURCE_DATE_EPOCH: file times are clamped to it; zero keeps them
	Progress Progress  // nil reports nothing
	Verbose  bool      // ask the package manager for details
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
func Create(ctx context.Context, def *tmpl.Definition, opt Options) (*Result, error) {
	b, err := start(def, opt)
	if err != nil {
		return nil, err
	}
	defer b.cleanup()
	dummies, err := b.dummies(ctx)
	if err != nil {
		return nil, err
	}
	b.phase("bootstrap")
	env := b.env(dummies)
	if err := b.pkgr.Bootstrap(ctx, b.root, def, env); err != nil {
		return nil, fmt.Errorf("bootstrap %s: %w", def.Name, b.rootErr(err))
	}
	return b.finish(ctx, nil)
}

// Update brings the published template def up to date: it unpacks it,
// upgrades its packages and installs what the definition gained, and
// publishes a new file (the previous one kept as NAME.tar.EXT-old) only when
// the package manifest changed.
func Update(ctx context.Context, def *tmpl.Definition, opt Options) (*Result, error) {
	old, ok := Find(opt.CacheDir, def.Name)
	if !ok {
		return nil, fmt.Errorf("%s is not in %s: create it with vzpkg create cache %s", def.Name, opt.CacheDir, def.Name)
	}
	if opt.Format == "" {
		opt.Format = formatOf(old)
	}
	b, err := start(def, opt)
	if err != nil {
		return nil, err
	}
	defer b.cleanup()
	b.phase("unpack")
	if err := unpack(ctx, old, b.root); err != nil {
		return nil, b.rootErr(err)
	}
	before, err := b.pkgr.Query(ctx, b.root)
	if err != nil {
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
	diff := diffManifests(before, after)
	if len(diff) == 0 && formatOf(old) == opt.Format {
		sum, _ := os.ReadFile(old + ".sha256")
		return &Result{Path: old, SHA256: firstField(string(sum)), Packages: after}, nil
	}
	res, err := b.finish(ctx, after)
	if err != nil {
		return nil, err
	}
	res.Diff = diff
	return res, nil
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

func start(def *tmpl.Definition, opt Options) (*builder, error) {
	pkgr, err := packagerFor(def)
	if err != nil {
		return nil, err
	}
	if opt.Format == "" {
		opt.Format = "gz"
	}
	argv, err := compressor(opt.Format)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opt.CacheDir, 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(opt.CacheDir, ".vzpkg-"+def.Name+"-")
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
func (b *builder) cleanup() {
	if err := rootfs.UnmountUnder(b.work); err != nil {
		fmt.Fprintf(os.Stderr, "vzpkg: %v; left %s in place\n", err, b.work)
		return
	}
	if left, _ := rootfs.MountsUnder(b.work); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "vzpkg: %s is still mounted; left %s in place\n", left[0], b.work)
		return
	}
	os.RemoveAll(b.work)
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
// packs and publishes. pkgs is the installed package list when known.
func (b *builder) finish(ctx context.Context, pkgs []packager.Package) (*Result, error) {
	var err error
	if pkgs == nil {
		if pkgs, err = b.pkgr.Query(ctx, b.root); err != nil {
			return nil, err
		}
	}
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
	if err := container.WriteRecord(b.root, b.def.Packager, b.pkgr.spec); err != nil {
		return nil, fmt.Errorf("record the packager: %w", err)
	}
	for _, h := range b.def.Hooks[tmpl.PhaseFinal] {
		b.phase("hook " + h)
		if err := runHook(ctx, h, b.root, b.opt.Progress); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.phase("pack")
	return b.publish(ctx, pkgs)
}

func runHook(ctx context.Context, hook, root string, p Progress) error {
	cmd := exec.CommandContext(ctx, hook, root)
	if p != nil {
		cmd.Stdout, cmd.Stderr = p.Output(), p.Output()
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("final hook %s: %w", hook, err)
	}
	return nil
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

// Remove deletes the published template name from dir, with its checksum,
// manifest and previous version.
func Remove(dir, name string) error {
	p, ok := Find(dir, name)
	if !ok {
		return fmt.Errorf("%s is not in %s", name, dir)
	}
	var errs []error
	for _, f := range []string{p, p + ".sha256", p + "-old", manifestPath(p), manifestPath(p) + "-old"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
