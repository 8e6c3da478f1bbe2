package vzpkgcli

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"vzpkg2/internal/build"
	"vzpkg2/internal/tmpl"
)

// buildFlags are the flags of the commands that build templates.
type buildFlags struct {
	cacheDir string
	cacher   string
	noCacher bool
	format   string
	quiet    bool
	verbose  bool
	noWait   bool
}

func (f *buildFlags) register(cmd *cobra.Command, withFormat bool) {
	cmd.Flags().StringVar(&f.cacheDir, "cache-dir", "", "where templates are kept (default cache_dir of vzpkg.conf)")
	cmd.Flags().StringVar(&f.cacher, "cacher", "", "pkg-cacher URL to build through (default cacher_url of vzpkg.conf)")
	cmd.Flags().BoolVar(&f.noCacher, "no-cacher", false, "fetch from the mirrors directly")
	cmd.MarkFlagsMutuallyExclusive("cacher", "no-cacher")
	if withFormat {
		cmd.Flags().StringVar(&f.format, "format", "gz", "compression of the tarball: gz, xz or zst")
	}
	cmd.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "print nothing but errors and the result")
	cmd.Flags().BoolVarP(&f.verbose, "verbose", "v", false, "print the package manager's output")
	cmd.MarkFlagsMutuallyExclusive("quiet", "verbose")
	registerNoWait(cmd, &f.noWait)
}

// isolatedAnnotation marks the commands that run in namespaces of their
// own (see Isolated).
const isolatedAnnotation = "vzpkg-isolated"

// Isolated reports whether cmd builds templates and so should run in mount
// and PID namespaces of its own (internal/isolate), so that the kernel
// removes its mounts and processes however it dies.
func Isolated(cmd *cobra.Command) bool { return cmd.Annotations[isolatedAnnotation] == "true" }

// registerNoWait adds --no-wait to a command that changes a template.
func registerNoWait(cmd *cobra.Command, noWait *bool) {
	cmd.Flags().BoolVar(noWait, "no-wait", false, "fail at once when another vzpkg run works on the template, instead of waiting for it")
}

// lockNote is the part of a command's description about concurrent runs.
const lockNote = `

One vzpkg run at a time works on a template in a cache directory (create, update and remove
cache take the lock file .NAME.lock there): a second run says that it waits for the first and
goes on when it is done, or with --no-wait fails at once.`

// prepare resolves the template and the build options.
func (a *app) prepare(ctx context.Context, cmd *cobra.Command, name string, f *buildFlags) (*tmpl.Definition, build.Options, *progress, error) {
	var opt build.Options
	cfg, tree, err := a.load()
	if tree == nil {
		return nil, opt, nil, err
	}
	def, lerr := tree.Lookup(name)
	if lerr != nil {
		return nil, opt, nil, lerr
	}
	opt.CacheDir = cfg.CacheDir
	if f.cacheDir != "" {
		opt.CacheDir = f.cacheDir
	}
	cacher := cfg.CacherURL
	if f.cacher != "" {
		cacher = f.cacher
	}
	if cacher != "" && !f.noCacher {
		if opt.Cacher, err = checkCacher(ctx, cacher); err != nil {
			return nil, opt, nil, err
		}
	}
	if s := a.env.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil || sec < 0 {
			return nil, opt, nil, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", s)
		}
		opt.Epoch = time.Unix(sec, 0)
	}
	opt.Format = f.format
	opt.Verbose = f.verbose
	opt.HookTimeout = cfg.HookTimeout
	opt.NoWait = f.noWait
	opt.Waiting = cmd.ErrOrStderr()
	p := newProgress(cmd.ErrOrStderr(), f.quiet, f.verbose, a.env.Now)
	opt.Progress = p
	return def, opt, p, nil
}

// checkCacher parses a pkg-cacher URL and makes sure something answers there,
// so that a build does not fail minutes later on its first download.
func checkCacher(ctx context.Context, s string) (*url.URL, error) {
	// The URL becomes the base of the template's apt sources: only a scheme
	// and an address; a path, query, fragment or user would be written
	// into every source line (and a password into the tarball).
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" {
		shown := s
		if err == nil {
			shown = u.Redacted()
		}
		return nil, fmt.Errorf("pkg-cacher URL %q: want http://HOST:PORT/ (no path, query, fragment or user)", shown)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("pkg-cacher at %s does not answer (%v): start it with pkg-cacher serve, or build with --no-cacher", u, err)
	}
	resp.Body.Close()
	return u, nil
}

func (a *app) newCreate() *cobra.Command {
	create := &cobra.Command{Use: "create", Short: "create objects: cache (a template)"}
	var f buildFlags
	cache := &cobra.Command{
		Use:   "cache NAME",
		Short: "build a template into the template cache",
		Long: `Build template NAME and publish it in the cache directory as NAME.tar.gz (or .tar.xz,
.tar.zst), with NAME.tar.gz.sha256 and NAME.manifest (one "name version arch" line per
package) beside it.

The build bootstraps the template's packages with its package manager (mmdebstrap for apt)
into a private directory beside the cache, through pkg-cacher unless --no-cacher; installs
the dummy packages; applies the fixups; points the repositories at pkg-cacher (the originals
kept as *.disabled) when the template says use_cacher; and packs a reproducible tarball:
sorted entries, numeric owners, times clamped to $SOURCE_DATE_EPOCH when it is set, extended
attributes and file capabilities kept, compressed on every CPU. An existing template of the
same name, in any format, is kept as NAME.tar.gz-old with NAME.tar.gz-old.sha256 and
NAME.manifest-old; the files of a template change together, even when a run is killed.

Interrupted or failed, a build leaves no output file, no private directory and no mount
behind. As root it runs in mount and PID namespaces of its own: killed (SIGKILL), it leaves
no process and no mount, and the next run on the template removes its private directory.
Builds ignore the caller's umask: files are published 0644.` + lockNote,
		Example: `  vzpkg create cache debian-12-x86_64-minimal --cacher http://127.0.0.1:3142/
  SOURCE_DATE_EPOCH=1700000000 vzpkg create cache debian-12-x86_64 --cache-dir ./out --format zst`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			def, opt, p, err := a.prepare(cmd.Context(), cmd, args[0], &f)
			if err != nil {
				return err
			}
			res, err := build.Create(cmd.Context(), def, opt)
			p.Done()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d packages, sha256 %s\n", res.Path, len(res.Packages), res.SHA256)
			return nil
		},
	}
	f.register(cache, true)
	cache.Annotations = map[string]string{isolatedAnnotation: "true"}
	create.AddCommand(cache)
	return create
}

func (a *app) newUpdate() *cobra.Command {
	update := &cobra.Command{Use: "update", Short: "update objects: cache (a template)"}
	var (
		f        buildFlags
		recreate bool
	)
	cache := &cobra.Command{
		Use:   "cache NAME",
		Short: "bring a built template up to date",
		Long: `Check template NAME in the cache directory against its checksum (NAME.tar.gz.sha256),
unpack it and check its manifest against its own package database (var/lib/dpkg/status): a
template changed or a manifest edited after the build is refused (--recreate rebuilds it).
Then upgrade its packages and install what its definition gained, through pkg-cacher unless
--no-cacher. When the packages changed, print the changes ("+" added, "-" removed, "~"
upgraded), keep the previous file as NAME.tar.gz-old and publish the new one; otherwise leave
the file alone. --recreate builds it
from scratch instead, as vzpkg create cache does.` + lockNote,
		Example: `  vzpkg update cache debian-12-x86_64-minimal
  vzpkg update cache debian-12-x86_64-minimal --recreate`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			def, opt, p, err := a.prepare(cmd.Context(), cmd, args[0], &f)
			if err != nil {
				return err
			}
			var res *build.Result
			if recreate {
				res, err = build.Create(cmd.Context(), def, opt)
			} else {
				opt.Format = ""
				res, err = build.Update(cmd.Context(), def, opt)
			}
			p.Done()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !res.Changed {
				fmt.Fprintf(out, "%s is up to date (%d packages)\n", res.Path, len(res.Packages))
				return nil
			}
			for _, d := range res.Diff {
				fmt.Fprintln(out, d)
			}
			fmt.Fprintf(out, "%s: %d packages, sha256 %s\n", res.Path, len(res.Packages), res.SHA256)
			return nil
		},
	}
	f.register(cache, false)
	cache.Flags().BoolVar(&recreate, "recreate", false, "rebuild from scratch")
	cache.Annotations = map[string]string{isolatedAnnotation: "true"}
	update.AddCommand(cache)
	return update
}

func (a *app) newRemove() *cobra.Command {
	remove := &cobra.Command{Use: "remove", Short: "remove objects: cache (a template)"}
	var (
		cacheDir string
		noWait   bool
	)
	cache := &cobra.Command{
		Use:   "cache NAME",
		Short: "delete a built template from the template cache",
		Long: `Delete template NAME from the cache directory, with its checksum, its manifest and the
previous version (-old), in every format. The template's definition is not touched.` + lockNote,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			if cacheDir == "" {
				cacheDir = cfg.CacheDir
			}
			return build.Remove(cmd.Context(), args[0], build.Options{CacheDir: cacheDir, NoWait: noWait, Waiting: cmd.ErrOrStderr()})
		},
	}
	cache.Flags().StringVar(&cacheDir, "cache-dir", "", "where templates are kept (default cache_dir of vzpkg.conf)")
	registerNoWait(cache, &noWait)
	remove.AddCommand(cache)
	return remove
}
