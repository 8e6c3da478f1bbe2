// Command vzpkg builds OS templates for containers from a template metadata
// tree and manages packages in containers.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"vzpkg2/internal/isolate"
	"vzpkg2/internal/vzpkgcli"
)

func main() {
	root := vzpkgcli.New(vzpkgcli.Env{})
	if cmd, _, err := root.Find(os.Args[1:]); err == nil && vzpkgcli.Isolated(cmd) {
		if status, ok := isolate.Self(); ok {
			os.Exit(status)
		}
	}
	// Every signal that ends a run goes through the same cleanup: SIGHUP (the
	// terminal went away) and SIGPIPE (vzpkg create cache N | head -1) too,
	// which would otherwise kill vzpkg on the spot, mounts and all; with
	// SIGPIPE caught, a write to a closed pipe returns an error instead.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	defer stop()
	if err := root.ExecuteContext(ctx); err != nil {
		code := 1
		var ee *vzpkgcli.ExitError
		if errors.As(err, &ee) {
			code = ee.Code
		}
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(os.Stderr, "vzpkg:", msg)
		}
		stop()
		os.Exit(code)
	}
}
