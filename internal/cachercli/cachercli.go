// Package cachercli is pkg-cacher's command tree.
package cachercli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"vzpkg2/internal/cacheconf"
	"vzpkg2/internal/cacheserver"
	"vzpkg2/internal/expire"
	"vzpkg2/internal/precache"
	"vzpkg2/internal/store/disk"
)

// New returns the pkg-cacher root command.
func New() *cobra.Command {
	root := &cobra.Command{
		Use:   "pkg-cacher",
		Short: "caching proxy for apt and yum/dnf repositories",
		Long: `pkg-cacher is a caching HTTP proxy that understands Linux distribution repositories
(apt and yum/dnf). Packages are cached forever, index files are revalidated, and every
client of a file being downloaded receives its bytes as they arrive.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServe(), newVerify(), newExpire(), newImport(), newPrecache(), newVersion())
	for _, cmd := range root.Commands() {
		if cmd.Flags().Lookup("config") != nil {
			cmd.MarkFlagFilename("config")
		}
	}
	// The completion command is part of the tree (and has pages) before
	// Execute would add it.
	root.InitDefaultCompletionCmd()
	return root
}

func newServe() *cobra.Command {
	var (
		file    string
		verbose bool
	)
	cmd := &cobra.Command{
		Use:               "serve [-c FILE] [key=value ...]",
		ValidArgsFunction: completeKeys,
		Short:             "run the caching proxy in the foreground",
		Long: `Run the caching proxy in the foreground until SIGINT or SIGTERM.

Settings come from the built-in defaults, then FILE (default ` + cacheconf.DefaultFile + `
when it exists), then each key=value argument. See pkg-cacher.conf(5) for every key.
Clients may use the cache as an HTTP proxy, by URL prefix (http://cacher:3142/HOST/PATH),
through a path_map name (http://cacher:3142/NAME/PATH), or for https upstreams as
http://cacher:3142/HTTPS///HOST/PATH. The original pkg-cacher's configuration file loads as
it is; its keys without an effect here are named in a warning at start. SIGHUP reopens the
access log and reloads the configuration.

Keys (pkg-cacher.conf(5) explains each with its default):
` + cacheconf.KeysHelp(),
		Example: `  pkg-cacher serve
  pkg-cacher serve -c ./pkg-cacher.conf daemon_port=8080 offline_mode=1`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(file, args)
			if err != nil {
				return err
			}
			level := slog.LevelInfo
			if verbose || cfg.Debug {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			for _, w := range cfg.Warnings {
				log.Warn(w)
			}
			ln, err := net.Listen("tcp", cfg.ListenAddr())
			if err != nil {
				return fmt.Errorf("listen on %s: %w (is another cache running? set daemon_port)", cfg.ListenAddr(), err)
			}
			defer ln.Close()
			if cfg.PIDFile != "" {
				if err := os.WriteFile(cfg.PIDFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
					return fmt.Errorf("pidfile: %w", err)
				}
				defer os.Remove(cfg.PIDFile)
			}
			// Bind first, then drop privileges: the cache and the logs are
			// opened as the user.
			if cfg.User != "" {
				if err := dropPrivileges(cfg.User, cfg.Group); err != nil {
					return err
				}
			}
			srv, err := cacheserver.New(cfg, log)
			if err != nil {
				if cfg.User != "" && errors.Is(err, fs.ErrPermission) {
					return fmt.Errorf("%w (pkg-cacher runs as user %s: give it cache_dir and logdir)", err, cfg.User)
				}
				return err
			}
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer func() { signal.Stop(hup); close(hup) }()
			go reloadOnHUP(hup, srv, file, args, log)
			return srv.Serve(cmd.Context(), ln)
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "configuration file")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log upstream retries and other details")
	return cmd
}

// reloadOnHUP re-reads the configuration (file and args, as at start) and
// reopens the access log at each signal on hup: logrotate's postrotate and
// systemctl reload send SIGHUP. A configuration with an error is refused,
// logged, and the running one kept.
func reloadOnHUP(hup <-chan os.Signal, srv *cacheserver.Server, file string, args []string, log *slog.Logger) {
	for range hup {
		if err := srv.ReopenLog(); err != nil {
			log.Error("access log not reopened", "err", err)
		}
		cfg, err := loadConfig(file, args)
		if err != nil {
			log.Error("configuration not reloaded: the running one is kept", "err", err)
			continue
		}
		for _, w := range cfg.Warnings {
			log.Warn(w)
		}
		if err := srv.Reload(cfg); err != nil {
			log.Warn("configuration reloaded in part", "err", err)
			continue
		}
		log.Info("configuration reloaded")
	}
}

// openStore reads the configuration and opens its cache directory, for the
// commands that work on a cache pkg-cacher serve is not running on.
func openStore(file string, args []string) (*cacheconf.Config, *disk.Store, error) {
	cfg, err := loadConfig(file, args)
	if err != nil {
		return nil, nil, err
	}
	st, err := disk.Open(cfg.CacheDir)
	if err != nil {
		return nil, nil, err
	}
	if st.Recovery().CollectDue {
		// What a crash left without an index entry: a command has the time.
		if _, _, err := st.GC(context.Background()); err != nil {
			st.Close()
			return nil, nil, err
		}
	}
	return cfg, st, nil
}

// loadConfig reads file (default: cacheconf.DefaultFile when it exists) and
// the key=value overrides.
func loadConfig(file string, args []string) (*cacheconf.Config, error) {
	if file == "" {
		if _, err := os.Stat(cacheconf.DefaultFile); err == nil {
			file = cacheconf.DefaultFile
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return cacheconf.Load(file, args)
}

func newVerify() *cobra.Command {
	var (
		file   string
		repair bool
	)
	cmd := &cobra.Command{
		Use:               "verify [-c FILE] [--repair] [key=value ...]",
		ValidArgsFunction: completeKeys,
		Short:             "re-hash the whole cache and report damaged files",
		Long: `Re-hash every file in the cache directory (cache_dir) and check that each cached URL
names an intact file. Damaged files are listed with the URLs they serve; with --repair they are
removed, so the next request for those URLs fetches them again. pkg-cacher serve must not be
running on the same cache directory. Exits 1 when damage is found and not repaired.`,
		Example: `  pkg-cacher verify
  pkg-cacher verify --repair cache_dir=/srv/pkg-cacher`,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, st, err := openStore(file, args)
			if err != nil {
				return err
			}
			defer st.Close()
			r, err := st.Verify(cmd.Context(), repair)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, p := range r.Problems {
				if p.Key != "" {
					fmt.Fprintf(out, "%s: %s (%s)\n", p.Key, p.What, p.Path)
				} else {
					fmt.Fprintf(out, "%s: %s\n", p.Path, p.What)
				}
			}
			fmt.Fprintf(out, "%d files, %d bytes checked: %d problems", r.Blobs, r.Bytes, len(r.Problems))
			if repair && len(r.Problems) > 0 {
				fmt.Fprint(out, ", removed")
			}
			fmt.Fprintln(out)
			if len(r.Problems) > 0 && !repair {
				return errors.New("the cache is damaged: run pkg-cacher verify --repair")
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "configuration file")
	cmd.Flags().BoolVar(&repair, "repair", false, "remove damaged files")
	return cmd
}

func newExpire() *cobra.Command {
	var (
		file   string
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:               "expire [-c FILE] [--dry-run] [key=value ...]",
		ValidArgsFunction: completeKeys,
		Short:             "remove cached files no metadata references and no client has used lately",
		Long: `Run one expiry pass over the cache directory (cache_dir), as pkg-cacher serve does every
6 hours: a file no cached metadata references and no client has asked for in expire_days
goes (a release nobody has updated from in that time goes with its packages); then, over
max_size, the least recently used packages go. Each file that goes is printed with its size,
then the space freed. pkg-cacher serve must not be running on the same cache directory.`,
		Example: `  pkg-cacher expire --dry-run
  pkg-cacher expire expire_days=7 max_size=20G`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, st, err := openStore(file, args)
			if err != nil {
				return err
			}
			defer st.Close()
			used := expire.NewUsage()
			usage := cacheserver.UsagePath(cfg)
			if err := used.Load(usage); err != nil {
				return err
			}
			r, err := cacheserver.Expire(cmd.Context(), cfg, st, used, time.Now(), dryRun)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, info := range r.Removed {
				fmt.Fprintf(out, "%s\t%d\n", info.Key, info.Size)
			}
			if dryRun {
				fmt.Fprintf(out, "dry run: %d files would go, freeing %d bytes; %d files (%d bytes) would stay\n", len(r.Removed), r.Freed, r.Kept, r.Size)
				return nil
			}
			fmt.Fprintf(out, "%d files removed, %d bytes freed; %d files (%d bytes) kept\n", len(r.Removed), r.Freed, r.Kept, r.Size)
			return used.Save(usage)
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "configuration file")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would go, remove nothing")
	return cmd
}

func newImport() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:               "import [-c FILE] [key=value ...] DIR...",
		ValidArgsFunction: completeDirs,
		Short:             "adopt package files from other caches into the cache",
		Long: `Adopt the package files (.deb, .udeb, .rpm, .drpm) found under each DIR — an apt-cacher-ng
cache, a /var/cache/apt/archives, an old pkg-cacher cache — whose bytes a repository index
in the cache lists, under every URL that lists them: they are never fetched again. Files no
cached index lists are skipped; files whose name an index lists with other bytes are
corrupt and left out. Each file's fate is printed, then the counts. Fetch the repositories'
indexes through pkg-cacher first (apt-get update, dnf makecache), so that it knows them.
pkg-cacher serve must not be running on the same cache directory. Arguments with a = are
settings; the others are directories.`,
		Example: `  pkg-cacher import /var/cache/apt-cacher-ng /var/cache/apt/archives`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var settings, dirs []string
			for _, a := range args {
				if k, _, ok := strings.Cut(a, "="); ok && !strings.ContainsAny(k, "/.") {
					settings = append(settings, a)
				} else {
					dirs = append(dirs, a)
				}
			}
			if len(dirs) == 0 {
				return errors.New("no directory to import from")
			}
			_, st, err := openStore(file, settings)
			if err != nil {
				return err
			}
			defer st.Close()
			out := cmd.OutOrStdout()
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			r, err := cacheserver.Import(cmd.Context(), st, dirs, log, func(file, fate string) {
				fmt.Fprintf(out, "%s: %s\n", file, fate)
			})
			fmt.Fprintf(out, "%d adopted (%d bytes), %d skipped, %d corrupt\n", r.Adopted, r.Bytes, r.Skipped, r.Corrupt)
			return err
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "configuration file")
	return cmd
}

func newPrecache() *cobra.Command {
	var from string
	cmd := &cobra.Command{
		Use:   "precache [--from FILE] INDEX-URL [PACKAGE ...]",
		Short: "fetch through a running pkg-cacher the packages an index lists by name",
		Long: `Fetch INDEX-URL — a Packages or Sources index, or a primary.xml (compressed or not), at the
URL a client reaches it by through pkg-cacher — and then every file it lists for the named
packages, through the same pkg-cacher, so that a fleet's first install finds them cached.
--from FILE adds the first word of each line of FILE as a name (a template's .manifest, say).
Shows a progress line on a terminal, a line per file otherwise. Exits 1 when a name is not
in the index.`,
		Example: `  pkg-cacher precache http://127.0.0.1:3142/deb.debian.org/debian/dists/bookworm/main/binary-amd64/Packages.xz hello curl
  pkg-cacher precache --from /vz/template/cache/debian-12-x86_64-minimal.manifest \
      http://127.0.0.1:3142/deb.debian.org/debian/dists/bookworm/main/binary-amd64/Packages.xz`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			names := args[1:]
			if from != "" {
				b, err := os.ReadFile(from)
				if err != nil {
					return err
				}
				for _, line := range strings.Split(string(b), "\n") {
					if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(f[0], "#") {
						names = append(names, f[0])
					}
				}
			}
			if len(names) == 0 {
				return errors.New("no package named (give names, or --from FILE)")
			}
			out := cmd.OutOrStdout()
			tty := false
			if f, ok := out.(*os.File); ok {
				if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
					tty = true
				}
			}
			progress := func(done, total int, file string) {
				switch {
				case tty && file != "":
					fmt.Fprintf(out, "\r\x1b[K[%d/%d] %s", done+1, total, file)
				case tty:
					fmt.Fprint(out, "\r\x1b[K")
				case file != "":
					fmt.Fprintf(out, "[%d/%d] %s\n", done+1, total, file)
				}
			}
			r, err := precache.Run(cmd.Context(), &http.Client{}, args[0], names, progress)
			fmt.Fprintf(out, "%d files fetched (%d bytes)\n", r.Fetched, r.Bytes)
			if err == nil && len(r.Missing) > 0 {
				err = fmt.Errorf("the index lists no package called %s", strings.Join(r.Missing, ", "))
			}
			return err
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "file whose lines start with package names")
	return cmd
}

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "pkg-cacher", cacheserver.Version)
		},
	}
}
