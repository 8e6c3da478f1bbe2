package cachercli

import (
	"strings"

	"github.com/spf13/cobra"

	"vzpkg2/internal/cacheconf"
)

// completeKeys completes the key=value arguments of serve, verify and
// expire: the keys of pkg-cacher.conf, each with its description.
func completeKeys(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var keys []cobra.Completion
	if !strings.Contains(toComplete, "=") {
		for _, line := range strings.Split(strings.TrimSpace(cacheconf.KeysHelp()), "\n") {
			key, desc, _ := strings.Cut(strings.TrimSpace(line), ": ")
			if strings.HasPrefix(key, toComplete) {
				keys = append(keys, cobra.CompletionWithDesc(key+"=", desc))
			}
		}
	}
	return keys, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
}

// completeDirs completes directories (import's DIR...).
func completeDirs(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveFilterDirs
}
