// Package vzpkgcli is vzpkg's command tree: create / update / remove cache,
// list, show-config, check and version for templates; install, remove,
// update, list, info and check-updates for the packages of containers. Verbs that act on an object follow vztt's two-word style as a
// parent command with one child per object (`vzpkg create cache NAME` is a
// "create" command holding a "cache" command).
package vzpkgcli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"vzpkg2/internal/templatebuild"
	"vzpkg2/internal/tmpl"
	"vzpkg2/internal/vzpkgconf"
	"vzpkg2/templates"
)

// TemplatesEnv names the environment variable that overrides the template
// search path (same syntax as templates_path).
const TemplatesEnv = "VZPKG_TEMPLATES"

// Env is what the commands take from the process. A nil field means the
// process's own: os.Getenv, os.Executable, time.Now.
type Env struct {
	Getenv     func(string) string
	Executable func() (string, error)
	Now        func() time.Time
}

// app holds the root command's flags and the environment.
type app struct {
	env       Env
	config    string
	templates []string
	builtin   string // the directory the tree built into vzpkg was extracted to, when it is used
}

// New returns the vzpkg root command.
func New(env Env) *cobra.Command {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.Executable == nil {
		env.Executable = os.Executable
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	a := &app{env: env}
	root := &cobra.Command{
		Use:   "vzpkg",
		Short: "build and manage OS templates for containers",
		Long: `vzpkg builds OS templates (root file system tarballs for containers) from a tree of
template metadata, and manages packages in containers independently of their package manager.

A template is named DISTRO-VERSION-ARCH[-SET], e.g. debian-12-x86_64-minimal; without a set it
is the "default" set. Its definition comes from the config.yaml files at each level of the
template tree: TREE/config.yaml, TREE/DISTRO/, TREE/DISTRO/VERSION/ and
TREE/DISTRO/VERSION/ARCH/ (the format is described in vzpkg-templates(5)).

Global settings come from ` + vzpkgconf.DefaultFile + ` (or --config; see vzpkg.conf(5)). The
template trees are, first match wins: --templates, else $` + TemplatesEnv + `, else templates_path
of vzpkg.conf, else ` + vzpkgconf.LocalTemplates + ` (local overrides) layered over the shipped
tree: PREFIX/share/vzpkg/templates, /usr/share/vzpkg/templates, templates/ of the source checkout
vzpkg was built in, or else the tree built into vzpkg, extracted to ` + SystemTreeCache + `/templates-HASH
(as root; ~/.cache/vzpkg otherwise). vzpkg check and show-config name the trees used.`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		DisableAutoGenTag: true,
	}
	root.PersistentFlags().StringVarP(&a.config, "config", "c", "", "global configuration file (default "+vzpkgconf.DefaultFile+" when it exists)")
	root.PersistentFlags().StringArrayVar(&a.templates, "templates", nil, "template tree to use instead of the search path (repeatable, or DIR:DIR...; first wins)")
	root.AddCommand(a.newCreate(), a.newUpdate(), a.newRemove(), a.newList(), a.newShowConfig(), a.newCheck(), newVersion(),
		a.newInstall(), a.newInfo(), a.newCheckUpdates())
	root.MarkPersistentFlagFilename("config")
	root.MarkPersistentFlagDirname("templates")
	walk(root, completeFlags)
	// The completion command is part of the tree (and has pages) before
	// Execute would add it.
	root.InitDefaultCompletionCmd()
	return root
}

// load reads the global configuration and the template trees. The tree is
// returned even when err lists problems in it.
func (a *app) load() (*vzpkgconf.Config, *tmpl.Tree, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	roots, err := a.roots(cfg)
	if err != nil {
		return nil, nil, err
	}
	tree, err := tmpl.Load(roots)
	return cfg, tree, err
}

// loadConfig reads the global configuration.
func (a *app) loadConfig() (*vzpkgconf.Config, error) {
	return vzpkgconf.Load(a.config)
}

// roots returns the template search path: --templates, else $VZPKG_TEMPLATES,
// else templates_path, else the default path. Directories named explicitly
// must exist; those of templates_path that do not are skipped.
func (a *app) roots(cfg *vzpkgconf.Config) ([]string, error) {
	var roots []string
	from := ""
	switch {
	case len(a.templates) > 0:
		for _, t := range a.templates {
			roots = append(roots, vzpkgconf.SplitPath(t)...)
		}
		from = "--templates"
	case a.env.Getenv(TemplatesEnv) != "":
		roots = vzpkgconf.SplitPath(a.env.Getenv(TemplatesEnv))
		from = "$" + TemplatesEnv
	case cfg.TemplatesPath != nil:
		for _, r := range cfg.TemplatesPath {
			if fi, err := os.Stat(r); err == nil && fi.IsDir() {
				roots = append(roots, r)
			}
		}
		if len(roots) == 0 {
			return nil, fmt.Errorf("no directory of templates_path (%s) exists; fix templates_path in vzpkg.conf", strings.Join(cfg.TemplatesPath, ":"))
		}
		return roots, nil
	default:
		exe, err := a.env.Executable()
		if err == nil {
			if real, err := filepath.EvalSymlinks(exe); err == nil {
				exe = real
			}
		}
		roots = vzpkgconf.DefaultTemplatesPath(exe)
		if len(roots) == 0 || (len(roots) == 1 && roots[0] == vzpkgconf.LocalTemplates) {
			// No shipped tree installed: the one built into vzpkg.
			cache, err := treeCacheDir()
			if err == nil {
				a.builtin, err = extractTree(templates.FS, cache)
			}
			if err != nil {
				return nil, fmt.Errorf("no template tree found (looked in %s, /usr/share/vzpkg/templates and next to %s) and %w; set templates_path in vzpkg.conf or use --templates", vzpkgconf.LocalTemplates, exe, err)
			}
			roots = append(roots, a.builtin)
		}
		return roots, nil
	}
	for _, r := range roots {
		if fi, err := os.Stat(r); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("template tree %s (from %s) is not a directory", r, from)
		}
	}
	return roots, nil
}

// describeRoots names the trees of tree, saying which one is built into vzpkg.
func (a *app) describeRoots(tree *tmpl.Tree) string {
	roots := tree.Roots()
	for i, r := range roots {
		if r == a.builtin {
			roots[i] += " (the tree built into vzpkg)"
		}
	}
	return strings.Join(roots, ":")
}

// treeProblems reports the problems of a tree on w and returns the error a
// command ends with.
func treeProblems(w io.Writer, err error) error {
	var errs tmpl.Errors
	if !errors.As(err, &errs) {
		return err
	}
	for _, e := range errs {
		fmt.Fprintln(w, e)
	}
	problems := "problems"
	if len(errs) == 1 {
		problems = "problem"
	}
	return fmt.Errorf("%d %s in the template tree", len(errs), problems)
}

func (a *app) newList() *cobra.Command {
	var f ctFlags
	cmd := &cobra.Command{
		Use:   "list [CT]",
		Short: "list every template, or the packages of a container",
		Long: `Without CT, list every template the template tree defines: its name, its packager, and whether it is
built into the cache directory (cache_dir in vzpkg.conf) with the age and size of the build.
Problems in the tree are printed after the list; the command then fails (see vzpkg check).

With CT, list the packages installed in container CT: name, version and architecture (--json:
an array of {"name", "version", "arch"}).
` + ctDoc + exitStatusDoc,
		Example: `  vzpkg list
  vzpkg list 101
  vzpkg list lxc:web1 --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				return a.containerList(cmd, args[0], &f)
			}
			if f.json || f.driver != "" {
				return &ExitError{Code: ExitUsage, Err: errors.New("--json and --driver are for the packages of a container: vzpkg list CT")}
			}
			cfg, tree, loadErr := a.load()
			if tree == nil {
				return loadErr
			}
			now := a.env.Now()
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tPACKAGER\tCACHED\tAGE\tSIZE")
			for _, d := range tree.Definitions() {
				cached, age, size := "no", "-", "-"
				// Finish a publish a killed build left half done (when no
				// build runs and we may), so the row shows a whole set.
				templatebuild.Recover(cmd.Context(), cfg.CacheDir, d.Name)
				if p, ok := templatebuild.Find(cfg.CacheDir, d.Name); ok {
					if fi, err := os.Stat(p); err == nil {
						cached, age, size = "yes", formatAge(now.Sub(fi.ModTime())), formatSize(fi.Size())
					}
				}
				packager := d.Packager
				if d.ScriptPackager != "" {
					packager += ":" + d.ScriptPackager
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Name, packager, cached, age, size)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if loadErr != nil {
				return treeProblems(cmd.ErrOrStderr(), loadErr)
			}
			return nil
		},
	}
	f.register(cmd, true)
	return cmd
}

func formatAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "<1m"
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}

func formatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	v, suffix := float64(n), ""
	for _, s := range []string{"K", "M", "G", "T"} {
		v /= unit
		suffix = s
		if v < unit {
			break
		}
	}
	if v < 10 {
		return fmt.Sprintf("%.1f%s", v, suffix)
	}
	return fmt.Sprintf("%.0f%s", v, suffix)
}

func (a *app) newShowConfig() *cobra.Command {
	return &cobra.Command{
		Use:   "show-config NAME",
		Short: "print a template's merged definition and where each value comes from",
		Long: `Print the fully merged definition of template NAME as YAML: packager, repositories, keys,
package set, dummy packages, fixups and hooks. A comment after each value names the file and
line that set it. NAME may end in -default for the default set.`,
		Example: `  vzpkg show-config debian-12-x86_64-minimal
  vzpkg show-config --templates ./templates almalinux-9-aarch64`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeTemplates(oneName),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, tree, err := a.load()
			if tree == nil {
				return err
			}
			d, lerr := tree.Lookup(args[0])
			if lerr != nil {
				return lerr
			}
			fmt.Fprintf(cmd.OutOrStdout(), "# %s, from %s\n", d.Name, a.describeRoots(tree))
			_, err = d.WriteTo(cmd.OutOrStdout())
			return err
		},
	}
}

func (a *app) newCheck() *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "validate the whole template tree",
		Long: `Read every config.yaml of the template tree and resolve every template, then print every
problem found, each with the file and line to fix. Fails when there is any.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, tree, err := a.load()
			if tree == nil {
				return err
			}
			if err != nil {
				return treeProblems(cmd.ErrOrStderr(), err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d templates in %s: OK\n", len(tree.Definitions()), a.describeRoots(tree))
			return nil
		},
	}
}

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print vzpkg's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v := "(devel)"
			if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
				v = bi.Main.Version
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "vzpkg", v)
			return err
		},
	}
}
