package templatebuild

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"vzpkg2/internal/atomicfile"
	"vzpkg2/internal/packager"
	"vzpkg2/internal/rootfs"
)

// Formats are the compressions a template may be written with, the default first.
func Formats() []string { return []string{"gz", "xz", "zst"} }

// compressors are the programs writing each format: all use every CPU and
// give the same bytes whatever their number, and gzip's output carries no
// name or time. pigz is zlib's deflate, as small as gzip -6.
var compressors = map[string][]string{
	"gz":  {"pigz", "-n", "-6", "-c"},
	"xz":  {"xz", "--threads=0", "--block-size=16MiB", "-6", "-c"},
	"zst": {"zstd", "-T0", "-q", "-3", "-c"},
}

// compressor returns the command line of format's compressor, checking that
// it is installed.
func compressor(format string) ([]string, error) {
	argv, ok := compressors[format]
	if !ok {
		return nil, fmt.Errorf("unknown format %q: use one of %s", format, strings.Join(Formats(), ", "))
	}
	if _, err := exec.LookPath(argv[0]); err != nil {
		return nil, fmt.Errorf("%s is needed for .tar.%s: install it (apt-get install %s)", argv[0], format, argv[0])
	}
	return argv, nil
}

// compress starts the compressor argv writing to w; closing the returned
// writer waits for it. Ending ctx (Ctrl-C) kills it.
func compress(ctx context.Context, argv []string, w io.Writer) (io.WriteCloser, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout = w
	var stderr strings.Builder
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", argv[0], err)
	}
	return &cmdWriter{in, cmd, &stderr}, nil
}

type cmdWriter struct {
	io.WriteCloser
	cmd    *exec.Cmd
	stderr *strings.Builder
}

func (c *cmdWriter) Close() error {
	if err := errors.Join(c.WriteCloser.Close(), c.cmd.Wait()); err != nil {
		return fmt.Errorf("%s: %w: %s", c.cmd.Args[0], err, strings.TrimSpace(c.stderr.String()))
	}
	return nil
}

// A published template NAME is a set of files in the cache directory: the
// tarball NAME.tar.EXT, its checksum NAME.tar.EXT.sha256 (sha256sum -c
// format) and the package list NAME.manifest; and the set of the previous
// build: NAME.tar.EXT-old, NAME.tar.EXT-old.sha256 and NAME.manifest-old. The
// whole set changes at once, whatever kills a run and when:
//
//  1. publish writes every file of the new set that is new into the private
//     directory's publish/, each under its final name, synced: the tarball,
//     its checksum and the manifest, the previous tarball and manifest as
//     hard links named -old (the published files are not touched), the
//     previous checksum rewritten for the -old name; and .set, the names of
//     the new set. Then it syncs publish/.
//  2. It renames publish/ to DIR/.NAME.commit and syncs DIR: the commit
//     point. A run killed before it leaves the published set as it was (and
//     its private directory, which holds nothing published).
//  3. finishCommit moves each file of .NAME.commit to its name in DIR,
//     removes every other file name of the template (another format's
//     files, an -old from two builds ago), syncs DIR, and removes
//     .NAME.commit. Each of these steps can be done again with the same
//     result, and every run that takes the template's lock (create, update,
//     remove) first finishes a commit it finds: a run killed after the
//     commit point has published the new set as soon as the next run starts.
//
// All of it happens under the template's lock (lockTemplate).

// setNames returns every file name template name may have in the cache
// directory: the published set and the -old set, in every format.
func setNames(name string) []string {
	names := []string{name + ".manifest", name + ".manifest-old"}
	for _, f := range Formats() {
		t := name + ".tar." + f
		names = append(names, t, t+".sha256", t+"-old", t+"-old.sha256")
	}
	return names
}

// commitDir is the directory of a committed publish of name (step 2).
func commitDir(dir, name string) string { return filepath.Join(dir, "."+name+".commit") }

// setList is the file of a commit directory naming the files of the new set.
const setList = ".set"

// publish packs the root into NAME.tar.EXT and publishes it with its
// checksum and manifest, the previous template becoming NAME.tar.EXT-old
// (see above).
func (b *builder) publish(ctx context.Context, pkgs []packager.Package) (*Result, error) {
	dir, name := b.opt.CacheDir, b.def.Name
	final := filepath.Join(dir, name+".tar."+b.opt.Format)
	base := filepath.Base(final)
	stage := filepath.Join(b.work, "publish")
	if err := os.Mkdir(stage, 0o755); err != nil {
		return nil, err
	}
	sum, err := b.pack(ctx, filepath.Join(stage, base))
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.phase("publish")
	manifest := filepath.Base(manifestPath(final))
	if err := errors.Join(
		writeSynced(filepath.Join(stage, base+".sha256"), sum+"  "+base+"\n"),
		writeSynced(filepath.Join(stage, manifest), formatManifest(pkgs)),
	); err != nil {
		return nil, err
	}
	// The -old files first and the tarball last, so that even a reader that
	// does not finish commits sees the new tarball only with its checksum.
	var set []string
	if prev, ok := Find(dir, name); ok {
		old := filepath.Base(prev) + "-old"
		if err := os.Link(prev, filepath.Join(stage, old)); err != nil {
			return nil, err
		}
		set = append(set, old)
		if data, err := os.ReadFile(prev + ".sha256"); err == nil && firstField(string(data)) != "" {
			if err := writeSynced(filepath.Join(stage, old+".sha256"), firstField(string(data))+"  "+old+"\n"); err != nil {
				return nil, err
			}
			set = append(set, old+".sha256")
		}
		if err := os.Link(manifestPath(prev), filepath.Join(stage, manifest+"-old")); err == nil {
			set = append(set, manifest+"-old")
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	set = append(set, manifest, base+".sha256", base)
	if err := writeSynced(filepath.Join(stage, setList), strings.Join(set, "\n")+"\n"); err != nil {
		return nil, err
	}
	if err := atomicfile.SyncDir(stage); err != nil {
		return nil, err
	}
	if err := b.fault("staged"); err != nil {
		return nil, err
	}
	if err := os.Rename(stage, commitDir(dir, name)); err != nil {
		return nil, err
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return nil, err
	}
	if err := b.fault("committed"); err != nil {
		return nil, err
	}
	if err := finishCommit(dir, name, b.opt.fault); err != nil {
		return nil, err
	}
	return &Result{Path: final, SHA256: sum, Packages: pkgs, Changed: true}, nil
}

func (b *builder) fault(step string) error {
	if b.opt.fault == nil {
		return nil
	}
	return b.opt.fault(step)
}

// recoverPublish finishes a publish of name in dir that was committed but
// not finished (step 3 above); there is nothing to do when none was.
func recoverPublish(dir, name string) error {
	if err := finishCommit(dir, name, nil); err != nil {
		return fmt.Errorf("finish the publish of %s a previous run began: %w", name, err)
	}
	return nil
}

// finishCommit does step 3 of a publish; fault is the test's fault point, or nil.
func finishCommit(dir, name string, fault func(string) error) error {
	commit := commitDir(dir, name)
	data, err := os.ReadFile(filepath.Join(commit, setList))
	switch {
	case errors.Is(err, os.ErrNotExist):
		// No commit, or one finished but for removing its empty directory.
		if err := os.Remove(commit); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	case err != nil:
		return err
	}
	inSet := map[string]bool{}
	for _, n := range strings.Fields(string(data)) {
		inSet[n] = true
		err := os.Rename(filepath.Join(commit, n), filepath.Join(dir, n))
		if err != nil && !errors.Is(err, os.ErrNotExist) { // ErrNotExist: moved by an earlier try
			return err
		}
		if fault != nil {
			if err := fault("moved " + n); err != nil {
				return err
			}
		}
	}
	for _, n := range setNames(name) {
		if inSet[n] {
			continue
		}
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return err
	}
	if fault != nil {
		if err := fault("replaced"); err != nil {
			return err
		}
	}
	if err := os.Remove(filepath.Join(commit, setList)); err != nil {
		return err
	}
	if err := os.Remove(commit); err != nil {
		return err
	}
	return atomicfile.SyncDir(dir)
}

// pack writes the compressed tarball of the root to path and returns its SHA-256.
func (b *builder) pack(ctx context.Context, path string) (string, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	counted := &countWriter{w: io.MultiWriter(f, h), progress: b.opt.Progress}
	z, err := compress(ctx, b.compressor, counted)
	if err != nil {
		return "", err
	}
	// When the file cannot be written (a full disk), the compressor dies of
	// a broken pipe and so does the tar writer feeding it: the error that
	// matters is the first one writing the file.
	if err := rootfs.Pack(b.root, z, b.opt.Epoch); err != nil {
		z.Close()
		if counted.err != nil {
			return "", fmt.Errorf("pack %s: %w", b.def.Name, counted.err)
		}
		return "", fmt.Errorf("pack %s: %w", b.def.Name, err)
	}
	if err := z.Close(); err != nil {
		if counted.err != nil {
			return "", fmt.Errorf("pack %s: %w", b.def.Name, counted.err)
		}
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), f.Close()
}

// countWriter counts the bytes written to w and remembers the first error.
type countWriter struct {
	w        io.Writer
	n        int64
	err      error
	progress Progress
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil && c.err == nil {
		c.err = err
	}
	c.n += int64(n)
	if c.progress != nil {
		c.progress.Packed(c.n)
	}
	return n, err
}

// unpack extracts a published template into root with GNU tar, keeping
// owners, modes, device nodes and extended attributes.
func unpack(ctx context.Context, path, root string) error {
	cmd := exec.CommandContext(ctx, "tar", "--extract", "--file="+path, "--directory="+root,
		"--preserve-permissions", "--same-owner", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--auto-compress")
	if formatOf(path) == "zst" {
		cmd.Args = append(cmd.Args, "--use-compress-program=zstd")
	}
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("unpack %s: %w: %s", path, err, strings.TrimSpace(string(msg)))
	}
	return nil
}

func formatOf(path string) string { return strings.TrimPrefix(filepath.Ext(path), ".") }

// manifestPath is NAME.manifest for NAME.tar.EXT.
func manifestPath(tarball string) string {
	return strings.TrimSuffix(tarball, ".tar"+filepath.Ext(tarball)) + ".manifest"
}

// formatManifest is one "name version arch" line per package.
func formatManifest(pkgs []packager.Package) string {
	var b strings.Builder
	for _, p := range pkgs {
		fmt.Fprintf(&b, "%s %s %s\n", p.Name, p.Version, p.Arch)
	}
	return b.String()
}

// verifyChecksum checks the published tarball against its .sha256 file, as
// sha256sum -c would.
func verifyChecksum(tarball, name string) error {
	sumFile := tarball + ".sha256"
	recreate := fmt.Sprintf("rebuild it with vzpkg update cache %s --recreate", name)
	data, err := os.ReadFile(sumFile)
	if err != nil {
		return fmt.Errorf("cannot check %s against its checksum: %w; %s", tarball, err, recreate)
	}
	fs := strings.Fields(string(data))
	if len(fs) != 2 || len(fs[0]) != sha256.Size*2 || strings.TrimPrefix(fs[1], "*") != filepath.Base(tarball) {
		return fmt.Errorf("%s is not the checksum of %s (want \"SHA256  %s\"); %s", sumFile, filepath.Base(tarball), filepath.Base(tarball), recreate)
	}
	f, err := os.Open(tarball)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("read %s: %w", tarball, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != strings.ToLower(fs[0]) {
		return fmt.Errorf("%s does not match its checksum in %s (sha256 %s, want %s): it changed after it was built; %s", tarball, sumFile, got, fs[0], recreate)
	}
	return nil
}

// checkManifest compares the manifest published beside tarball with the
// packages of its package database.
func checkManifest(path, tarball string, pkgs []packager.Package, name string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("cannot check the manifest of %s: %w; rebuild it with vzpkg update cache %s --recreate", tarball, err, name)
	}
	if string(data) != formatManifest(pkgs) {
		return fmt.Errorf("%s does not match the package database in %s: it was edited after the build; rebuild it with vzpkg update cache %s --recreate", path, tarball, name)
	}
	return nil
}

func writeSynced(path, content string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(content)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

func firstField(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}
