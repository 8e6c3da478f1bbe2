package manpage

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"vzpkg2/internal/cacheconf"
	"vzpkg2/internal/cachercli"
	"vzpkg2/internal/tmpl"
	"vzpkg2/internal/vzpkgcli"
	"vzpkg2/internal/vzpkgconf"
)

var update = flag.Bool("update", false, "rewrite the KEYS sections of docs/man/*.conf.5 from etc/*.conf")

// TestConfPagesAreCurrent fails when the KEYS section of a configuration
// file's page no longer matches the example file that documents every key;
// `go test ./internal/manpage -update` rewrites them.
func TestConfPagesAreCurrent(t *testing.T) {
	for _, c := range []struct{ page, example string }{
		{"pkg-cacher.conf.5", "pkg-cacher.conf"},
		{"vzpkg.conf.5", "vzpkg.conf"},
	} {
		t.Run(c.page, func(t *testing.T) {
			CheckConfPage(t, "../../docs/man/"+c.page, "../../etc/"+c.example, *update, "go test ./internal/manpage -update")
		})
	}
}

const manDir = "../../docs/man"

func pages(t *testing.T) []string {
	t.Helper()
	p, _ := filepath.Glob(filepath.Join(manDir, "*.[1-9]"))
	if len(p) < 20 {
		t.Fatalf("only %d pages in docs/man", len(p))
	}
	return p
}

// TestPagesRenderWithoutWarnings renders every page in docs/man as man(1)
// would, with every groff warning on: any warning fails.
func TestPagesRenderWithoutWarnings(t *testing.T) {
	if _, err := exec.LookPath("groff"); err != nil {
		t.Fatal("groff is not installed (Debian package groff-base, in scripts/setup.sh)")
	}
	for _, p := range pages(t) {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command("groff", "-ww", "-man", "-Tutf8", p)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err != nil || stderr.Len() > 0 || stdout.Len() == 0 {
			t.Errorf("groff %s: %v\n%s", filepath.Base(p), err, stderr.String())
		}
	}
}

var (
	fontEscape = regexp.MustCompile(`\\f[BIRP]`)
	reference  = regexp.MustCompile(`([A-Za-z0-9._+-]+) ?\(([1-9])\)`)
)

// TestSeeAlsoNamesPagesThatExist: every page has a SEE ALSO section, and each
// page it names is in docs/man.
func TestSeeAlsoNamesPagesThatExist(t *testing.T) {
	for _, p := range pages(t) {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		_, section, ok := strings.Cut(string(data), "\n.SH SEE ALSO\n")
		if !ok {
			t.Errorf("%s has no SEE ALSO section", filepath.Base(p))
			continue
		}
		section, _, _ = strings.Cut(section, "\n.SH ")
		section = strings.ReplaceAll(fontEscape.ReplaceAllString(section, ""), `\-`, "-")
		section = strings.NewReplacer(".BR ", "", ".B ", "").Replace(section)
		refs := reference.FindAllStringSubmatch(section, -1)
		if len(refs) == 0 {
			t.Errorf("the SEE ALSO section of %s names no page", filepath.Base(p))
		}
		for _, r := range refs {
			if _, err := os.Stat(filepath.Join(manDir, r[1]+"."+r[2])); err != nil {
				t.Errorf("%s: SEE ALSO names %s(%s), which is not in docs/man", filepath.Base(p), r[1], r[2])
			}
		}
	}
}

// TestEveryCommandHasAPage walks both command trees as they run (with the
// help and completion commands cobra adds) and wants a page for every
// command a user can call --help on, but cobra's own help command.
func TestEveryCommandHasAPage(t *testing.T) {
	for _, root := range []*cobra.Command{vzpkgcli.New(vzpkgcli.Env{}), cachercli.New()} {
		root.InitDefaultHelpCmd()
		root.InitDefaultCompletionCmd()
		var walk func(c *cobra.Command)
		walk = func(c *cobra.Command) {
			if !c.IsAvailableCommand() && c != root || c.Name() == "help" {
				return
			}
			page := strings.ReplaceAll(c.CommandPath(), " ", "-") + ".8"
			if _, err := os.Stat(filepath.Join(manDir, page)); err != nil {
				t.Errorf("%s --help has no page %s", c.CommandPath(), page)
			}
			for _, sub := range c.Commands() {
				walk(sub)
			}
		}
		walk(root)
	}
}

// TestConfPagesNameEveryKey: every key the configuration parsers know (as
// their unknown-key error lists them) is in the KEYS section of its page.
func TestConfPagesNameEveryKey(t *testing.T) {
	_, cacherErr := cacheconf.Load("", []string{"no_such_key=1"})
	vzpkgErr := vzpkgconf.Defaults().Parse("vzpkg.conf", strings.NewReader("no_such_key = 1\n"))
	for page, err := range map[string]error{"pkg-cacher.conf.5": cacherErr, "vzpkg.conf.5": vzpkgErr} {
		if err == nil {
			t.Fatalf("%s: an unknown key was accepted", page)
		}
		_, known, _ := strings.Cut(err.Error(), "(known")
		_, known, _ = strings.Cut(known, ": ")
		known, _, _ = strings.Cut(known, ")")
		keys := strings.Split(known, ", ")
		if len(keys) < 4 {
			t.Fatalf("%s: no key list in %q", page, err)
		}
		data, rerr := os.ReadFile(filepath.Join(manDir, page))
		if rerr != nil {
			t.Fatal(rerr)
		}
		_, section, _ := strings.Cut(string(data), keysBegin)
		section, _, _ = strings.Cut(section, keysEnd)
		section = fontEscape.ReplaceAllString(section, "")
		for _, k := range keys {
			if !regexp.MustCompile(`\b` + regexp.QuoteMeta(k) + `\b`).MatchString(section) {
				t.Errorf("%s does not document key %s", page, k)
			}
		}
	}
}

// TestGuideCommandsParse reads every vzpkg and pkg-cacher command line of
// docs/guide.md (in indented code, continuation lines joined, comments
// dropped) and wants the command to exist and its flags to parse, so the
// guide does not drift from the programs.
func TestGuideCommandsParse(t *testing.T) {
	data, err := os.ReadFile("../../docs/guide.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	n := 0
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if !strings.HasPrefix(line, "    ") {
			continue
		}
		line = strings.TrimSpace(line)
		for strings.HasSuffix(line, `\`) && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, `\`) + " " + strings.TrimSpace(lines[i])
		}
		line, _, _ = strings.Cut(line, " #")
		args := strings.Fields(line)
		var root *cobra.Command
		switch {
		case len(args) == 0:
			continue
		case args[0] == "vzpkg":
			root = vzpkgcli.New(vzpkgcli.Env{})
		case args[0] == "pkg-cacher":
			root = cachercli.New()
		default:
			continue
		}
		n++
		cmd, rest, err := root.Find(args[1:])
		if err == nil && cmd == root {
			err = fmt.Errorf("no command")
		}
		if err == nil {
			err = cmd.ParseFlags(rest)
		}
		if err == nil && cmd.Args != nil {
			err = cmd.Args(cmd, cmd.Flags().Args())
		}
		if err != nil {
			t.Errorf("docs/guide.md: %q: %v", line, err)
		}
	}
	if n < 20 {
		t.Errorf("found only %d command lines in docs/guide.md", n)
	}
}

// TestTemplatesPageNamesEveryFixupAndPhase: vzpkg-templates(5) lists every
// fixup a template may name and every hook phase, as package tmpl knows them.
func TestTemplatesPageNamesEveryKeyFixupAndPhase(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(manDir, "vzpkg-templates.5"))
	if err != nil {
		t.Fatal(err)
	}
	page := strings.ReplaceAll(string(data), `\-`, "-")
	for _, f := range tmpl.Fixups() {
		if !strings.Contains(page, "\n.TP\n.B "+f.Name+"\n") {
			t.Errorf("vzpkg-templates.5 does not list fixup %s", f.Name)
		}
	}
	for _, p := range tmpl.Phases() {
		if !strings.Contains(page, "\n.B "+string(p)+"\n") {
			t.Errorf("vzpkg-templates.5 does not name hook phase %s", p)
		}
	}
	for _, k := range tmpl.Keys() {
		if !strings.Contains(page, "\n.BR "+k+" ") && !strings.Contains(page, "\n.B "+k+"\n") {
			t.Errorf("vzpkg-templates.5 does not describe the key %s", k)
		}
	}
}
