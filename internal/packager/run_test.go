package packager

import (
	"context"
	"os/exec"
	"strings"
	"testing"
)

// TestRunFailureCarriesTheTail: a failed command's error ends with the last
// lines it printed, and a command printing megabytes without a newline
// makes an error of a few kilobytes, not of everything it printed.
func TestRunFailureCarriesTheTail(t *testing.T) {
	ctx := context.Background()
	err := Run(ctx, Env{}, exec.CommandContext(ctx, "sh", "-c", "seq 1 100; exit 3"), "seq", nil, 0)
	if err == nil {
		t.Fatal("a command exiting 3 succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, "\n71\n") || !strings.HasSuffix(msg, "\n100") || strings.Contains(msg, "\n70\n") {
		t.Errorf("error %q: want the last 30 lines, 71 to 100", msg)
	}

	err = Run(ctx, Env{}, exec.CommandContext(ctx, "sh", "-c", "head -c 20000000 /dev/zero | tr '\\0' x; exit 3"), "flood", nil, 0)
	if err == nil {
		t.Fatal("a command exiting 3 succeeded")
	}
	if n := len(err.Error()); n > 8192 || !strings.Contains(err.Error(), "xxxx") {
		t.Errorf("error of %d bytes after 20 MB printed without a newline; want the start of the line, at most a few KiB", n)
	}
}
