// Package cachercli is pkg-cacher's command tree.
package cachercli

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"

	"github.com/spf13/cobra"

	"vzpkg2/internal/cacheconf"
	"vzpkg2/internal/proxy"
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
	root.AddCommand(newServe(), newVersion())
	return root
}

func newServe() *cobra.Command {
	var (
		file    string
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "serve [-c FILE] [key=value ...]",
		Short: "run the caching proxy in the foreground",
		Long: `Run the caching proxy in the foreground until SIGINT or SIGTERM.

Settings come from the built-in defaults, then FILE (default ` + cacheconf.DefaultFile + `
when it exists), then each key=value argument. See the example pkg-cacher.conf for every key.
Clients may use the cache as an HTTP proxy, by URL prefix (http://cacher:3142/HOST/PATH),
through a path_map name (http://cacher:3142/NAME/PATH), or for https upstreams as
http://cacher:3142/HTTPS///HOST/PATH.`,
		Example: `  pkg-cacher serve
  pkg-cacher serve -c ./pkg-cacher.conf daemon_port=8080 offline_mode=1`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				if _, err := os.Stat(cacheconf.DefaultFile); err == nil {
					file = cacheconf.DefaultFile
				} else if !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
			cfg, err := cacheconf.Load(file, args)
			if err != nil {
				return err
			}
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			srv, err := proxy.NewServer(cfg, log)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", cfg.ListenAddr())
			if err != nil {
				return fmt.Errorf("listen on %s: %w (is another cache running? set daemon_port)", cfg.ListenAddr(), err)
			}
			return srv.Serve(cmd.Context(), ln)
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "configuration file")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log upstream retries and other details")
	return cmd
}

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "pkg-cacher", proxy.Version)
		},
	}
}
