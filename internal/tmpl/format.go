package tmpl

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// commentColumn is where provenance comments start when the value is shorter.
const commentColumn = 56

// WriteTo writes d as YAML, each value followed by a `# file:line` comment
// naming where it was set. It is what `vzpkg show-config` prints.
func (d *Definition) WriteTo(w io.Writer) (int64, error) {
	p := &printer{w: bufio.NewWriter(w), prov: d.Provenance}
	p.line(0, "name: "+quote(d.Name), "")
	p.field(0, "distro", d.Distro, "distro")
	p.field(0, "version", d.Version, "version")
	p.field(0, "arch", d.Arch, "arch")
	p.field(0, "arch_name", d.ArchName, "arch_name")
	p.field(0, "set", d.Set, "set")
	packager := d.Packager
	if d.ScriptPackager != "" {
		packager += ":" + d.ScriptPackager
	}
	p.field(0, "packager", packager, "packager")
	if d.Suite != "" {
		p.field(0, "suite", d.Suite, "suite")
	}
	if d.Releasever != "" {
		p.field(0, "releasever", d.Releasever, "releasever")
	}
	if d.Variant != "" {
		p.field(0, "variant", d.Variant, "variant")
	}
	if d.Bootstrap != "" {
		p.field(0, "bootstrap", d.Bootstrap, "bootstrap")
	}
	p.line(0, "use_cacher: "+strconv.FormatBool(d.UseCacher), "use_cacher")
	p.line(0, "weak_deps: "+strconv.FormatBool(d.WeakDeps), "weak_deps")
	p.line(0, "nodocs: "+strconv.FormatBool(d.NoDocs), "nodocs")

	p.line(0, "repos:", "")
	for _, r := range d.Repos {
		key := "repos." + r.Name
		p.line(1, "- name: "+quote(r.Name), key)
		p.list(2, "mirrors", r.Mirrors, key+".mirrors")
		p.list(2, "suites", r.Suites, key+".suites")
		p.list(2, "components", r.Components, key+".components")
		if r.Metalink != "" {
			p.field(2, "metalink", r.Metalink, key+".metalink")
		}
		if r.Mirrorlist != "" {
			p.field(2, "mirrorlist", r.Mirrorlist, key+".mirrorlist")
		}
		p.list(2, "keys", r.Keys, key+".keys")
	}
	p.items(0, "keys", d.Keys)
	p.items(0, "packages", d.Packages)
	p.line(0, "dummies:", "")
	for _, dm := range d.Dummies {
		p.line(1, "- name: "+quote(dm.Name), "dummies["+dm.Name+"]")
		p.line(2, "version: "+quote(dm.Version), "")
		if len(dm.Provides) > 0 {
			p.line(2, "provides:", "")
			for _, pr := range dm.Provides {
				p.line(3, "- "+quote(pr), "")
			}
		}
	}
	if len(d.PathExclude) > 0 || len(d.PathInclude) > 0 {
		p.items(0, "path_exclude", d.PathExclude)
		p.items(0, "path_include", d.PathInclude)
	}
	p.items(0, "fixups", d.Fixups)
	if len(d.Hooks) > 0 {
		p.line(0, "hooks:", "")
		for _, ph := range Phases() {
			if paths := d.Hooks[ph]; len(paths) > 0 {
				p.items(1, string(ph), paths)
			}
		}
	}
	if err := p.w.Flush(); err != nil && p.err == nil {
		p.err = err
	}
	return p.n, p.err
}

type printer struct {
	w    *bufio.Writer
	prov map[string]Source
	n    int64
	err  error
}

// line writes text at indent (two spaces a step) with the provenance of key.
func (p *printer) line(indent int, text, key string) {
	s := strings.Repeat("  ", indent) + text
	if src, ok := p.prov[key]; ok && key != "" {
		pad := max(commentColumn-len(s), 1)
		s += strings.Repeat(" ", pad) + "# " + src.String()
	}
	n, err := p.w.WriteString(s + "\n")
	p.n += int64(n)
	if err != nil && p.err == nil {
		p.err = err
	}
}

func (p *printer) field(indent int, name, val, key string) {
	p.line(indent, name+": "+quote(val), key)
}

// list writes a list set as a whole, with one provenance for all of it.
func (p *printer) list(indent int, name string, vals []string, key string) {
	if len(vals) == 0 {
		return
	}
	p.line(indent, name+":", key)
	for _, v := range vals {
		p.line(indent+1, "- "+quote(v), "")
	}
}

// items writes a list whose items each have their own provenance.
func (p *printer) items(indent int, name string, vals []string) {
	if len(vals) == 0 {
		p.line(indent, name+": []", "")
		return
	}
	p.line(indent, name+":", "")
	prefix := name
	if indent > 0 {
		prefix = "hooks." + name
	}
	for _, v := range vals {
		p.line(indent+1, "- "+quote(v), prefix+"["+v+"]")
	}
}

// quote returns s as a YAML scalar, quoted only when YAML would read it as
// something else.
func quote(s string) string {
	out, err := yaml.Marshal(s)
	if err != nil {
		return fmt.Sprintf("%q", s)
	}
	return strings.TrimSuffix(string(out), "\n")
}
