package vzpkgcli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progress shows a build's progress: on a terminal a status line redrawn in
// place (phase, elapsed time, the package manager's latest step, bytes
// packed); otherwise one log line per phase and per package-manager step.
// Quiet shows nothing; verbose adds every line of the package manager.
type progress struct {
	w       io.Writer
	tty     bool
	quiet   bool
	verbose bool
	now     func() time.Time

	mu     sync.Mutex // guards the fields below; output arrives from several goroutines
	start  time.Time
	phase  string
	detail string
	packed int64
	part   []byte // an incomplete output line
	drawn  bool   // a status line is on screen
}

func newProgress(w io.Writer, quiet, verbose bool, now func() time.Time) *progress {
	return &progress{w: w, tty: isTerminal(w), quiet: quiet, verbose: verbose, now: now, start: now()}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
}

func (p *progress) Phase(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.phase, p.detail = name, ""
	if p.quiet {
		return
	}
	if p.tty {
		p.draw()
		return
	}
	fmt.Fprintf(p.w, "[%s] %s\n", p.elapsed(), name)
}

func (p *progress) Packed(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && !p.quiet && n>>20 != p.packed>>20 {
		p.packed = n
		p.detail = fmt.Sprintf("%d MiB written", n>>20)
		p.draw()
	}
	p.packed = n
}

func (p *progress) Output() io.Writer { return p }

// Write takes the package manager's output and reports it line by line.
func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.part = append(p.part, b...)
	for {
		i := bytes.IndexByte(p.part, '\n')
		if i < 0 {
			break
		}
		p.line(strings.TrimRight(string(p.part[:i]), "\r"))
		p.part = p.part[i+1:]
	}
	return len(b), nil
}

// line reports one line of package-manager output. Step lines are
// mmdebstrap's "I: ..." and apt's and dpkg's "Unpacking"/"Setting up" lines.
func (p *progress) line(l string) {
	step := strings.HasPrefix(l, "I: ") || strings.HasPrefix(l, "W: ") || strings.HasPrefix(l, "E: ") ||
		strings.HasPrefix(l, "Unpacking ") || strings.HasPrefix(l, "Setting up ")
	switch {
	case p.quiet:
	case p.verbose:
		p.clear()
		fmt.Fprintln(p.w, l)
		if p.tty {
			p.draw()
		}
	case !step:
	case p.tty:
		p.detail = l
		p.draw()
	default:
		if strings.HasPrefix(l, "I: ") || strings.HasPrefix(l, "W: ") || strings.HasPrefix(l, "E: ") {
			fmt.Fprintf(p.w, "[%s]   %s\n", p.elapsed(), l)
		}
	}
}

// Done ends the status line.
func (p *progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
}

func (p *progress) draw() {
	status := fmt.Sprintf("[%s] %s", p.elapsed(), p.phase)
	if p.detail != "" {
		status += ": " + p.detail
	}
	if len(status) > 100 {
		status = status[:99] + "…"
	}
	fmt.Fprintf(p.w, "\r\033[K%s", status)
	p.drawn = true
}

func (p *progress) clear() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}

func (p *progress) elapsed() string {
	d := p.now().Sub(p.start).Round(time.Second)
	return fmt.Sprintf("%02d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}
