package tmpl

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// ConfigFile is the name of the configuration file at each level of the tree.
const ConfigFile = "config.yaml"

var (
	distroRE  = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	versionRE = regexp.MustCompile(`^[0-9a-z][0-9a-z.-]*$`)
)

// Tree is a loaded template tree.
type Tree struct {
	roots  []string
	defs   []*Definition // sorted by name
	byName map[string]*Definition
	failed map[string]Errors // templates that did not resolve, with their problems
}

// node is one position in the tree (a relative directory such as "debian/12")
// across all roots.
type node struct {
	rel    string
	depth  int
	dirs   []string // the directory in each root that has it, lowest priority first
	levels []*level // its config.yaml files, lowest priority first
}

// Load reads the trees under roots, the first root taking precedence over the
// later ones at each level, and resolves every template. It always returns a
// Tree holding the templates that resolved; err is an Errors listing every
// problem found, or nil.
func Load(roots []string) (*Tree, error) {
	var errs errorList
	nodes := map[string]*node{}
	for i := len(roots) - 1; i >= 0; i-- {
		root := roots[i]
		fi, err := os.Stat(root)
		if err != nil || !fi.IsDir() {
			errs.add(Source{File: root}, "template tree root is not a directory")
			continue
		}
		walk(root, "", 0, nodes, &errs)
	}

	var chains []*chain
	rels := make([]string, 0, len(nodes))
	for rel := range nodes {
		rels = append(rels, rel)
	}
	sort.Strings(rels)
	children := map[string]int{}
	for _, rel := range rels {
		if rel != "" {
			children[parentOf(rel)]++
		}
	}
	for _, rel := range rels {
		n := nodes[rel]
		switch {
		case n.depth == 3:
			chains = append(chains, newChain(n, nodes))
		case n.depth > 0 && children[rel] == 0:
			what := "version"
			if n.depth == 2 {
				what = "architecture"
			}
			errs.add(Source{File: n.dirs[len(n.dirs)-1]}, "no %s directories below; add one or remove this directory", what)
		}
	}

	t := &Tree{
		roots:  slices.Clone(roots),
		byName: map[string]*Definition{},
		failed: map[string]Errors{},
	}
	declared := map[string]string{} // template name → its architecture directory
	for _, c := range chains {
		for _, r := range c.resolve() {
			if len(r.name) > MaxNameLen {
				e := &Error{Src: r.src, Msg: fmt.Sprintf("template name %s... is %d bytes; at most %d fit in the file names a build makes (NAME.tar.zst-old.sha256 in at most 255 bytes); shorten the set's or a directory's name", r.name[:40], len(r.name), MaxNameLen)}
				r.errs, r.def = append(r.errs, e), nil
			}
			errs.errs = append(errs.errs, r.errs...)
			if first, dup := declared[r.name]; dup {
				e := &Error{Src: r.src, Msg: fmt.Sprintf("set %q gives %s the template name %q, which %s already has; rename a directory or the set", r.set, c.dir, r.name, first)}
				errs.errs = append(errs.errs, e)
				t.failed[r.name] = append(t.failed[r.name], e)
				delete(t.byName, r.name) // neither of the two is the template the name means
				continue
			}
			declared[r.name] = c.dir
			if r.def == nil {
				t.failed[r.name] = r.errs.normalize()
				continue
			}
			t.byName[r.name] = r.def
		}
	}
	var scriptDirs []string
	for _, root := range roots {
		scriptDirs = append(scriptDirs, filepath.Join(root, ScriptDir))
	}
	for _, d := range t.byName {
		if d.Packager == PackagerScript {
			d.ScriptDirs = slices.Clone(scriptDirs)
		}
		t.defs = append(t.defs, d)
	}
	slices.SortFunc(t.defs, func(a, b *Definition) int { return strings.Compare(a.Name, b.Name) })
	if len(errs.errs) > 0 {
		return t, errs.errs.normalize()
	}
	return t, nil
}

// walk records dir (root/rel) and its config.yaml, then descends.
func walk(root, rel string, depth int, nodes map[string]*node, errs *errorList) {
	dir := filepath.Join(root, filepath.FromSlash(rel))
	n := nodes[rel]
	if n == nil {
		n = &node{rel: rel, depth: depth}
		nodes[rel] = n
	}
	n.dirs = append(n.dirs, dir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		errs.add(Source{File: dir}, "read directory: %v", unwrapPath(err))
		return
	}
	for _, e := range entries {
		name := e.Name()
		p := filepath.Join(dir, name)
		if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
			continue // support files (hook scripts, notes) live in _dirs
		}
		if !e.IsDir() {
			switch {
			case name == ConfigFile:
				data, err := os.ReadFile(p)
				if err != nil {
					errs.add(Source{File: p}, "read: %v", unwrapPath(err))
					continue
				}
				if lv := parseLevel(p, depth, data, errs); lv != nil {
					n.levels = append(n.levels, lv)
				}
			case strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml"):
				errs.add(Source{File: p}, "unexpected file; the settings of a level go in %s", ConfigFile)
			}
			continue
		}
		if depth == 3 {
			errs.add(Source{File: p}, "unexpected directory below an architecture directory (support files go in directories starting with _)")
			continue
		}
		if msg := checkDirName(depth+1, name); msg != "" {
			errs.add(Source{File: p}, "%s", msg)
			continue
		}
		walk(root, path.Join(rel, name), depth+1, nodes, errs)
	}
}

func parentOf(rel string) string {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i]
	}
	return ""
}

func checkDirName(depth int, name string) string {
	switch depth {
	case 1:
		if !distroRE.MatchString(name) {
			return fmt.Sprintf("distribution directory %q: use lower-case letters, digits and '-'", name)
		}
	case 2:
		if !versionRE.MatchString(name) {
			return fmt.Sprintf("version directory %q: use lower-case letters, digits, '.' and '-'", name)
		}
	case 3:
		if !slices.Contains(Arches(), name) {
			return fmt.Sprintf("unknown architecture directory %q%s", name, suggest(name, Arches()))
		}
	}
	return ""
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Roots returns the roots the tree was loaded from, highest precedence first.
func (t *Tree) Roots() []string { return slices.Clone(t.roots) }

// Definitions returns every template that resolved, sorted by name.
func (t *Tree) Definitions() []*Definition { return slices.Clone(t.defs) }

// Lookup returns the template called name. "<name>-default" is accepted for
// the default set. It fails with the template's problems when it did not
// resolve, and with a suggestion when no template has that name.
func (t *Tree) Lookup(name string) (*Definition, error) {
	canon := strings.TrimSuffix(name, "-"+DefaultSet)
	for _, n := range []string{name, canon} {
		if d := t.byName[n]; d != nil {
			return d, nil
		}
		if errs := t.failed[n]; len(errs) > 0 {
			return nil, fmt.Errorf("template %q does not resolve:\n%w", n, errs)
		}
	}
	names := make([]string, 0, len(t.byName))
	for n := range t.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	hint := ""
	if s := suggest(name, names); strings.HasPrefix(s, " (did you mean") {
		hint = s
	}
	return nil, fmt.Errorf("no template %q%s; `vzpkg list` shows every template", name, hint)
}
