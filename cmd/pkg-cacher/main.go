// Command pkg-cacher is a caching HTTP proxy for apt and yum/dnf repositories.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"vzpkg2/internal/cachercli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cachercli.New().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "pkg-cacher:", err)
		os.Exit(1)
	}
}
