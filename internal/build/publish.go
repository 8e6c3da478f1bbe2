package build

import (
	"bufio"
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
// writer waits for it.
func compress(argv []string, w io.Writer) (io.WriteCloser, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
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

// publish packs the root into NAME.tar.EXT with its .sha256 and manifest:
// every file is written under a temporary name, synced, and renamed into
// place last; a previous template becomes NAME.tar.EXT-old.
func (b *builder) publish(ctx context.Context, pkgs []packager.Package) (*Result, error) {
	final := filepath.Join(b.opt.CacheDir, b.def.Name+".tar."+b.opt.Format)
	tmp := filepath.Join(b.work, filepath.Base(final))
	sum, err := b.pack(tmp)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	manifest := formatManifest(pkgs)
	sums := sum + "  " + filepath.Base(final) + "\n"
	if err := writeSynced(tmp+".sha256", sums); err != nil {
		return nil, err
	}
	if err := writeSynced(tmp+".manifest", manifest); err != nil {
		return nil, err
	}
	b.phase("publish")
	// A template of the same name in another format is replaced too.
	if prev, ok := Find(b.opt.CacheDir, b.def.Name); ok {
		for _, f := range []string{prev, manifestPath(prev)} {
			if err := os.Rename(f, f+"-old"); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, err
			}
		}
		os.Remove(prev + ".sha256")
	}
	for _, mv := range [][2]string{{tmp + ".manifest", manifestPath(final)}, {tmp + ".sha256", final + ".sha256"}, {tmp, final}} {
		if err := os.Rename(mv[0], mv[1]); err != nil {
			return nil, err
		}
	}
	if err := atomicfile.SyncDir(b.opt.CacheDir); err != nil {
		return nil, err
	}
	return &Result{Path: final, SHA256: sum, Packages: pkgs, Changed: true}, nil
}

// pack writes the compressed tarball of the root to path and returns its SHA-256.
func (b *builder) pack(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	counted := &countWriter{w: io.MultiWriter(f, h), progress: b.opt.Progress}
	z, err := compress(b.compressor, counted)
	if err != nil {
		return "", err
	}
	if err := rootfs.Pack(b.root, z, b.opt.Epoch); err != nil {
		z.Close()
		return "", fmt.Errorf("pack %s: %w", b.def.Name, err)
	}
	if err := z.Close(); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), f.Close()
}

type countWriter struct {
	w        io.Writer
	n        int64
	progress Progress
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
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

// ReadManifest reads a manifest written by a build.
func ReadManifest(path string) ([]packager.Package, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var pkgs []packager.Package
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fs := strings.Fields(sc.Text())
		if len(fs) != 3 {
			return nil, fmt.Errorf("%s:%d: want \"name version arch\", got %q", path, line, sc.Text())
		}
		pkgs = append(pkgs, packager.Package{Name: fs[0], Version: fs[1], Arch: fs[2]})
	}
	return pkgs, sc.Err()
}

// diffManifests lists what changed from a to b, by package name and architecture.
func diffManifests(a, b []packager.Package) []string {
	key := func(p packager.Package) string { return p.Name + ":" + p.Arch }
	old := map[string]packager.Package{}
	for _, p := range a {
		old[key(p)] = p
	}
	var diff []string
	for _, p := range b {
		o, ok := old[key(p)]
		switch {
		case !ok:
			diff = append(diff, fmt.Sprintf("+ %s %s", p.Name, p.Version))
		case o.Version != p.Version:
			diff = append(diff, fmt.Sprintf("~ %s %s -> %s", p.Name, o.Version, p.Version))
		}
		delete(old, key(p))
	}
	for _, p := range a {
		if _, gone := old[key(p)]; gone {
			diff = append(diff, fmt.Sprintf("- %s %s", p.Name, p.Version))
		}
	}
	return diff
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
