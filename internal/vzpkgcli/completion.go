package vzpkgcli

import (
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"vzpkg2/internal/templatebuild"
)

// Which templates completeTemplates offers.
const (
	oneName    = 1 << iota // the command takes one NAME, not NAME...
	builtNames             // only templates built into the cache directory
)

// completeTemplates completes the names of the templates of the tree (with
// builtNames, those in the cache directory: --cache-dir, else cache_dir of
// vzpkg.conf): vzpkg create cache deb<TAB> offers the Debian templates.
func (a *app) completeTemplates(which int) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if which&oneName != 0 && len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		cfg, tree, _ := a.load()
		if tree == nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		cacheDir := cfg.CacheDir
		if f := cmd.Flags().Lookup("cache-dir"); f != nil && f.Value.String() != "" {
			cacheDir = f.Value.String()
		}
		var names []cobra.Completion
		for _, d := range tree.Definitions() {
			if !strings.HasPrefix(d.Name, toComplete) || slices.Contains(args, d.Name) {
				continue
			}
			if _, built := templatebuild.Find(cacheDir, d.Name); which&builtNames == 0 || built {
				names = append(names, d.Name)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeFlags registers the completions of cmd's flags that take one of a
// few words or a directory, where cmd has them.
func completeFlags(cmd *cobra.Command) {
	words := map[string][]string{"format": {"gz", "xz", "zst"}, "driver": {"chroot", "lxc", "vzctl"}}
	for name, w := range words {
		if cmd.Flags().Lookup(name) != nil {
			cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(w, cobra.ShellCompDirectiveNoFileComp))
		}
	}
	for _, name := range []string{"cache-dir", "root-dir"} {
		if cmd.Flags().Lookup(name) != nil {
			cmd.MarkFlagDirname(name)
		}
	}
}

// walk calls fn for c and every command below it.
func walk(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		walk(sub, fn)
	}
}
