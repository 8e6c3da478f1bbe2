// Command vzpkg builds OS templates for containers from a template metadata
// tree and manages packages in containers.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"vzpkg2/internal/vzpkgcli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := vzpkgcli.New(vzpkgcli.Env{}).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "vzpkg:", err)
		os.Exit(1)
	}
}
