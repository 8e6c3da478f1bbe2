package vzpkgcli

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
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
}

// prepare resolves the template and the build options.
func (a *app) prepare(ctx context.Context, cmd *cobra.Command, name string, f *buildFlags) (*tmpl.Definition, build.Options, *progress, error) {
	tree, opt, err := a.options(ctx, f)
	if err != nil {
		return nil, opt, nil, err
	}
	def, err := tree.Lookup(name)
	if err != nil {
		return nil, opt, nil, err
	}
	p := newProgress(cmd.ErrOrStderr(), f.quiet, f.verbose, a.env.Now)
	opt.Progress = p
	return def, opt, p, nil
}

// options loads the template tree and the build options but the progress.
func (a *app) options(ctx context.Context, f *buildFlags) (*tmpl.Tree, build.Options, error) {
	var opt build.Options
	cfg, tree, err := a.load()
	if tree == nil {
		return nil, opt, err
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
			return nil, opt, err
		}
	}
	if s := a.env.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil || sec < 0 {
			return nil, opt, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", s)
		}
		opt.Epoch = time.Unix(sec, 0)
	}
	opt.Format = f.format
	opt.Verbose = f.verbose
	return tree, opt, nil
}

// batch runs one build per template: those named, or with all those
// selectAll picks from the tree. A single name runs as it always did; with
// several the batch goes on past a failed template (each failure printed
// on the error output as it happens), prints a summary and fails if any
// template failed. An interruption stops it.
func (a *app) batch(cmd *cobra.Command, names []string, all bool, f *buildFlags,
	selectAll func(tree *tmpl.Tree, opt build.Options) []string,
	one func(ctx context.Context, def *tmpl.Definition, opt build.Options) error) error {
	ctx := cmd.Context()
	if all == (len(names) > 0) {
		return fmt.Errorf("name templates or give --all, not both and not neither")
	}
	if len(names) == 1 {
		def, opt, p, err := a.prepare(ctx, cmd, names[0], f)
		if err != nil {
			return err
		}
		err = one(ctx, def, opt)
		p.Done()
		return err
	}
	tree, opt, err := a.options(ctx, f)
	if err != nil {
		return err
	}
	if all {
		if names = selectAll(tree, opt); len(names) == 0 {
			fmt.Fprintln(cmd.OutOrStdout(), "no templates to build")
			return nil
		}
	}
	var failed []string
	for i, name := range names {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted before %s (%d of %d templates done, %d failed)", name, i, len(names), len(failed))
		}
		err := func() error {
			def, err := tree.Lookup(name)
			if err != nil {
				return err
			}
			p := newProgress(cmd.ErrOrStderr(), f.quiet, f.verbose, a.env.Now)
			o := opt
			o.Progress = p
			err = one(ctx, def, o)
			p.Done()
			return err
		}()
		if err != nil {
			failed = append(failed, name)
			fmt.Fprintf(cmd.ErrOrStderr(), "vzpkg: %s: %v\n", name, err)
		}
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%d of %d templates done", len(names)-len(failed), len(names))
	if len(failed) > 0 {
		fmt.Fprintf(cmd.OutOrStdout(), "; failed: %s", strings.Join(failed, " "))
	}
	fmt.Fprintln(cmd.OutOrStdout())
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d templates failed: %s", len(failed), len(names), strings.Join(failed, " "))
	}
	return nil
}

// allDefined names every template of the tree.
func allDefined(tree *tmpl.Tree, _ build.Options) []string {
	var names []string
	for _, d := range tree.Definitions() {
		names = append(names, d.Name)
	}
	return names
}

// allBuilt names the templates of the tree published in the cache directory.
func allBuilt(tree *tmpl.Tree, opt build.Options) []string {
	var names []string
	for _, d := range tree.Definitions() {
		if _, ok := build.Find(opt.CacheDir, d.Name); ok {
			names = append(names, d.Name)
		}
	}
	return names
}

// checkCacher parses a pkg-cacher URL and makes sure something answers there,
// so that a build does not fail minutes later on its first download.
func checkCacher(ctx context.Context, s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("pkg-cacher URL %q: want http://HOST:PORT/", s)
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
	var (
		f   buildFlags
		all bool
	)
	cache := &cobra.Command{
		Use:   "cache NAME... | --all",
		Short: "build templates into the template cache",
		Long: `Build template NAME and publish it in the cache directory as NAME.tar.gz (or .tar.xz,
.tar.zst), with NAME.tar.gz.sha256 and NAME.manifest (one "name version arch" line per
package) beside it.

The build bootstraps the template's packages with its package manager (mmdebstrap for apt)
into a private directory beside the cache, through pkg-cacher unless --no-cacher; installs
the dummy packages; applies the fixups; points the repositories at pkg-cacher (the originals
kept as *.disabled) when the template says use_cacher; and packs a reproducible tarball:
sorted entries, numeric owners, times clamped to $SOURCE_DATE_EPOCH when it is set, extended
attributes and file capabilities kept, compressed on every CPU. An existing template of the
same name is kept as NAME.tar.gz-old. Interrupted or failed, a build leaves no output file,
no private directory and no mount behind.

apt templates are bootstrapped by mmdebstrap (or debootstrap), dnf templates (Fedora, CentOS
Stream, AlmaLinux, Rocky) by the host's dnf with --installroot, from the template's own
repositories and signing keys only, never the host's.

With several names, or --all (every template the tree defines), the templates are built one
after the other; a failed one does not stop the others. A summary ends the output, and the
exit status is non-zero when any template failed: fit for cron.`,
		Example: `  vzpkg create cache debian-12-x86_64-minimal --cacher http://127.0.0.1:3142/
  SOURCE_DATE_EPOCH=1700000000 vzpkg create cache debian-12-x86_64 --cache-dir ./out --format zst
  vzpkg create cache rocky-9-x86_64-minimal almalinux-9-x86_64-minimal
  vzpkg create cache --all --quiet`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.batch(cmd, args, all, &f, allDefined, func(ctx context.Context, def *tmpl.Definition, opt build.Options) error {
				res, err := build.Create(ctx, def, opt)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %d packages, sha256 %s\n", res.Path, len(res.Packages), res.SHA256)
				return nil
			})
		},
	}
	f.register(cache, true)
	cache.Flags().BoolVar(&all, "all", false, "build every template the tree defines")
	create.AddCommand(cache)
	return create
}

func (a *app) newUpdate() *cobra.Command {
	var (
		f        buildFlags
		recreate bool
		all      bool
		ctf      ctFlags
		af       allFlags
	)
	update := &cobra.Command{
		Use:   "update CT [PKG...] | --all [-j N]",
		Short: "update packages in containers; update cache: templates",
		Long: `Upgrade packages PKG in container CT, every package when none is named (apt-get
dist-upgrade, dnf upgrade), and print what changed ("+" added, "-" removed, "~" upgraded).

With --all, update every container the driver lists (vzlist -a for vzctl, lxc-ls for lxc,
each directory of --root-dir for chroot; without --driver: chroot when --root-dir is given,
else vzctl when vzlist is installed, else lxc), -j at a time. A line of progress is printed
for each container as it ends, a summary table at the end; a failed container does not
stop the others, and the exit status is 1 when any failed.

vzpkg update cache NAME updates templates (see vzpkg-update-cache(8)).
` + ctDoc + exitStatusDoc,
		Example: `  vzpkg update 101
  vzpkg update lxc:web1 openssl libssl3
  vzpkg update --all -j 4
  vzpkg update --all --root-dir /srv/roots`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return containerUpdate(cmd, args, &ctf, &af)
		},
	}
	ctf.register(update, false)
	af.register(update)
	cache := &cobra.Command{
		Use:   "cache NAME... | --all",
		Short: "bring built templates up to date",
		Long: `Unpack template NAME from the cache directory, upgrade its packages and install what its
definition gained, through pkg-cacher unless --no-cacher. When the package manifest changed,
print the changes ("+" added, "-" removed, "~" upgraded), keep the previous file as
NAME.tar.gz-old and publish the new one; otherwise leave the file alone. --recreate builds it
from scratch instead, as vzpkg create cache does.

With several names, or --all (every template of the tree that is in the cache directory),
the templates are updated one after the other; a failed one does not stop the others. A
summary ends the output, and the exit status is non-zero when any template failed.`,
		Example: `  vzpkg update cache debian-12-x86_64-minimal
  vzpkg update cache debian-12-x86_64-minimal --recreate
  vzpkg update cache --all --quiet`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.batch(cmd, args, all, &f, allBuilt, func(ctx context.Context, def *tmpl.Definition, opt build.Options) error {
				var res *build.Result
				var err error
				if recreate {
					res, err = build.Create(ctx, def, opt)
				} else {
					opt.Format = ""
					res, err = build.Update(ctx, def, opt)
				}
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
			})
		},
	}
	f.register(cache, false)
	cache.Flags().BoolVar(&recreate, "recreate", false, "rebuild from scratch")
	cache.Flags().BoolVar(&all, "all", false, "update every template of the tree that is in the cache directory")
	update.AddCommand(cache)
	return update
}

func (a *app) newRemove() *cobra.Command {
	var (
		cacheDir string
		ctf      ctFlags
	)
	remove := &cobra.Command{
		Use:   "remove CT PKG...",
		Short: "remove packages from a container; remove cache: a template",
		Long: `Remove packages PKG from container CT (apt-get remove, dnf remove). A package that is not
installed fails the whole request and leaves the container's packages as they were.

vzpkg remove cache NAME deletes a template (see vzpkg-remove-cache(8)).
` + ctDoc + exitStatusDoc,
		Example: `  vzpkg remove 101 htop
  vzpkg remove /srv/roots/ct1 hello`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return containerRemove(cmd, args, &ctf)
		},
	}
	ctf.register(remove, false)
	cache := &cobra.Command{
		Use:   "cache NAME",
		Short: "delete a built template from the template cache",
		Long: `Delete template NAME from the cache directory, with its checksum, its manifest and the
previous version (-old). The template's definition is not touched.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			if cacheDir == "" {
				cacheDir = cfg.CacheDir
			}
			return build.Remove(cacheDir, args[0])
		},
	}
	cache.Flags().StringVar(&cacheDir, "cache-dir", "", "where templates are kept (default cache_dir of vzpkg.conf)")
	remove.AddCommand(cache)
	return remove
}
