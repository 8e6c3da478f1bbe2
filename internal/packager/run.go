package packager

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Run runs a package manager's command for a backend. cmd, made with
// exec.CommandContext(ctx, ...), gets a process group of its own, so a
// terminal's Ctrl-C reaches vzpkg, which stops the command once. Its
// standard output goes to stdout when that is not nil; otherwise it goes,
// with its error output, to env.Output.
//
// On cancellation the whole group (the command and what it runs: hooks,
// workers, scriptlets) gets SIGTERM and grace to clean up before it is
// killed, and Run returns ctx.Err(); what is left of the group when the
// command is done is killed too. A failure names the command as what and
// carries the last lines of its output.
func Run(ctx context.Context, env Env, cmd *exec.Cmd, what string, stdout io.Writer, grace time.Duration) error {
	// Signalling only the command left a hook it ran (sleep in a customize
	// hook) running, and vzpkg waited for its output pipe until WaitDelay.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = grace
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	defer func() {
		if cmd.Process != nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // ESRCH when nothing is left
		}
	}()
	tail := &tailWriter{max: 30}
	var out io.Writer = tail
	if env.Output != nil {
		out = io.MultiWriter(env.Output, tail)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s failed: %w\n%s", what, err, tail)
	}
	return nil
}

// tailWriter keeps the last max lines written to it, each cut to
// maxLine bytes, for error messages: a command printing without end, or
// without newlines, costs no more memory than that.
type tailWriter struct {
	max   int
	lines []string
	part  []byte // the line not ended yet, up to maxLine bytes
}

// maxLine is the longest line a tailWriter keeps.
const maxLine = 4096

func (t *tailWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		line, rest, ended := bytes.Cut(p, []byte("\n"))
		t.part = append(t.part, line[:min(len(line), maxLine-len(t.part))]...)
		if !ended {
			break
		}
		t.lines = append(t.lines, string(t.part))
		t.part = t.part[:0]
		if len(t.lines) > t.max {
			t.lines = t.lines[len(t.lines)-t.max:]
		}
		p = rest
	}
	return n, nil
}

func (t *tailWriter) String() string {
	if len(t.part) == 0 {
		return strings.Join(t.lines, "\n")
	}
	return strings.Join(append(t.lines, string(t.part)), "\n")
}
