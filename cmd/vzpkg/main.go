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

	"vzpkg2/internal/vzpkgcli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := vzpkgcli.New(vzpkgcli.Env{}).ExecuteContext(ctx); err != nil {
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
