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

	"vzpkg2/internal/templatebuild"
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
func (a *app) prepare(ctx context.Context, cmd *cobra.Command, name string, f *buildFlags) (*tmpl.Definition, templatebuild.Options, *progress, error) {
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
	opt.Waiting = cmd.ErrOrStderr()
	return def, opt, p, nil
}

// options loads the template tree and the build options but the progress.
func (a *app) options(ctx context.Context, f *buildFlags) (*tmpl.Tree, templatebuild.Options, error) {
	var opt templatebuild.Options
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
	opt.HookTimeout = cfg.HookTimeout
	opt.NoWait = f.noWait
	return tree, opt, nil
}

// batch runs one build per template: those named, or with all those
// selectAll picks from the tree. A single name runs as it always did; with
// several the batch goes on past a failed template (each failure printed
// on the error output as it happens), prints a summary and fails if any
// template failed. An interruption stops it.
func (a *app) batch(cmd *cobra.Command, names []string, all bool, f *buildFlags,
	selectAll func(tree *tmpl.Tree, opt templatebuild.Options) []string,
	one func(ctx context.Context, def *tmpl.Definition, opt templatebuild.Options) error) error {
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
			o.Waiting = cmd.ErrOrStderr()
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
func allDefined(tree *tmpl.Tree, _ templatebuild.Options) []string {
	var names []string
	for _, d := range tree.Definitions() {
		names = append(names, d.Name)
	}
	return names
}

// allBuilt names the templates of the tree published in the cache directory.
func allBuilt(tree *tmpl.Tree, opt templatebuild.Options) []string {
	var names []string
	for _, d := range tree.Definitions() {
		if _, ok := templatebuild.Find(opt.CacheDir, d.Name); ok {
			names = append(names, d.Name)
		}
	}
	return names
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
same name, in any format, is kept as NAME.tar.gz-old with NAME.tar.gz-old.sha256 and
NAME.manifest-old; the files of a template change together, even when a run is killed.

Interrupted or failed, a build leaves no output file, no private directory and no mount
behind. As root it runs in mount and PID namespaces of its own: killed (SIGKILL), it leaves
no process and no mount, and the next run on the template removes its private directory.
Builds ignore the caller's umask: files are published 0644.

apt templates are bootstrapped by mmdebstrap (or debootstrap), dnf templates (Fedora, CentOS
Stream, AlmaLinux, Rocky) by the host's dnf with --installroot, from the template's own
repositories and signing keys only, never the host's.

With several names, or --all (every template the tree defines), the templates are built one
after the other; a failed one does not stop the others. A summary ends the output, and the
exit status is non-zero when any template failed: fit for cron.` + lockNote,
		Example: `  vzpkg create cache debian-12-x86_64-minimal --cacher http://127.0.0.1:3142/
  SOURCE_DATE_EPOCH=1700000000 vzpkg create cache debian-12-x86_64 --cache-dir ./out --format zst
  vzpkg create cache rocky-9-x86_64-minimal almalinux-9-x86_64-minimal
  vzpkg create cache --all --quiet`,
		ValidArgsFunction: a.completeTemplates(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.batch(cmd, args, all, &f, allDefined, func(ctx context.Context, def *tmpl.Definition, opt templatebuild.Options) error {
				res, err := templatebuild.Create(ctx, def, opt)
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
	cache.Annotations = map[string]string{isolatedAnnotation: "true"}
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
			return a.containerUpdate(cmd, args, &ctf, &af)
		},
	}
	ctf.register(update, false)
	af.register(update)
	cache := &cobra.Command{
		Use:   "cache NAME... | --all",
		Short: "bring built templates up to date",
		Long: `Check template NAME in the cache directory against its checksum (NAME.tar.gz.sha256),
unpack it and check its manifest against its own package database: a template changed or a
manifest edited after the build is refused (--recreate rebuilds it). Then upgrade its
packages and install what its definition gained, through pkg-cacher unless --no-cacher. When
the packages changed, print the changes ("+" added, "-" removed, "~" upgraded), keep the
previous file as NAME.tar.gz-old and publish the new one; otherwise leave the file alone.
--recreate builds it from scratch instead, as vzpkg create cache does.

With several names, or --all (every template of the tree that is in the cache directory),
the templates are updated one after the other; a failed one does not stop the others. A
summary ends the output, and the exit status is non-zero when any template failed.` + lockNote,
		Example: `  vzpkg update cache debian-12-x86_64-minimal
  vzpkg update cache debian-12-x86_64-minimal --recreate
  vzpkg update cache --all --quiet`,
		ValidArgsFunction: a.completeTemplates(builtNames),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.batch(cmd, args, all, &f, allBuilt, func(ctx context.Context, def *tmpl.Definition, opt templatebuild.Options) error {
				var res *templatebuild.Result
				var err error
				if recreate {
					res, err = templatebuild.Create(ctx, def, opt)
				} else {
					opt.Format = ""
					res, err = templatebuild.Update(ctx, def, opt)
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
	cache.Annotations = map[string]string{isolatedAnnotation: "true"}
	update.AddCommand(cache)
	return update
}

func (a *app) newRemove() *cobra.Command {
	var (
		cacheDir string
		noWait   bool
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
			return a.containerRemove(cmd, args, &ctf)
		},
	}
	ctf.register(remove, false)
	cache := &cobra.Command{
		Use:   "cache NAME",
		Short: "delete a built template from the template cache",
		Long: `Delete template NAME from the cache directory, with its checksum, its manifest and the
previous version (-old), in every format. The template's definition is not touched.` + lockNote,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeTemplates(oneName | builtNames),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			if cacheDir == "" {
				cacheDir = cfg.CacheDir
			}
			return templatebuild.Remove(cmd.Context(), args[0], templatebuild.Options{CacheDir: cacheDir, NoWait: noWait, Waiting: cmd.ErrOrStderr()})
		},
	}
	cache.Flags().StringVar(&cacheDir, "cache-dir", "", "where templates are kept (default cache_dir of vzpkg.conf)")
	registerNoWait(cache, &noWait)
	remove.AddCommand(cache)
	return remove
}
