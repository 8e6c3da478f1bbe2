package tmpl

import (
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// level is one parsed config.yaml: only what the file sets is non-nil.
type level struct {
	file  string
	depth int // 0 root, 1 distro, 2 version, 3 arch

	packager    *scalar // "apt", "dnf" or "script:NAME"
	badPackager bool    // a packager was given but is not valid (already reported)
	suite       *scalar
	releasever  *scalar
	variant     *scalar
	bootstrap   *scalar
	archName    *scalar
	useCacher   *boolVal
	weakDeps    *boolVal
	noDocs      *boolVal
	repos       []*repoDecl
	keys        *listOps[item]
	fixups      *listOps[item]
	hooks       map[Phase]*listOps[item]
	sets        []*setDecl
}

type scalar struct {
	val string
	src Source
}

type boolVal struct {
	val bool
	src Source
}

type item struct {
	val string
	src Source
}

// listOps is one level's change to a list: reset it, then add, then remove.
type listOps[T any] struct {
	reset  *Source
	add    []T
	remove []item // by key: a package or dummy name, a path
}

type dummyItem struct {
	d   Dummy
	src Source
}

// setDecl is one level's definition (or change) of a named set.
type setDecl struct {
	name        string
	src         Source
	include     []item
	packages    listOps[item]
	dummies     listOps[dummyItem]
	pathExclude listOps[item]
	pathInclude listOps[item]
	weakDeps    *boolVal
	noDocs      *boolVal
}

// repoDecl is one level's definition (or change) of a repository; each field
// given replaces the inherited one.
type repoDecl struct {
	name       string
	src        Source
	mirrors    *strList
	suites     *strList
	components *strList
	keys       *strList
	metalink   *scalar
	mirrorlist *scalar
	enabled    *boolVal
}

type strList struct {
	vals []item
	src  Source
}

var (
	topKeys     = []string{"arch_name", "bootstrap", "fixups", "hooks", "keys", "nodocs", "packager", "releasever", "repos", "sets", "suite", "use_cacher", "variant", "weak_deps"}
	setKeys     = []string{"dummies", "include", "nodocs", "packages", "path_exclude", "path_include", "weak_deps"}
	opsKeys     = []string{"add", "remove", "reset"}
	dummyKeys   = []string{"name", "provides", "version"}
	repoKeys    = []string{"components", "enabled", "keys", "metalink", "mirrorlist", "mirrors", "suites"}
	nameRE      = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	scriptRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	yamlLineRE  = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	badItemRune = " \t\n\"'`;|&<>"
)

// Keys returns the keys a config.yaml may give at its top level and in a
// set, sorted and without repeats: what the format's documentation must
// name.
func Keys() []string {
	keys := slices.Concat(topKeys, setKeys)
	slices.Sort(keys)
	return slices.Compact(keys)
}

// decoder turns one file's YAML nodes into a level, collecting every error.
type decoder struct {
	file  string
	depth int // of the file's level: 0 for the tree's root
	errs  *errorList
}

func (d *decoder) src(n *yaml.Node) Source { return Source{File: d.file, Line: n.Line} }

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.errs.add(d.src(n), format, args...)
}

// parseLevel parses data, the contents of file. It returns nil when the file
// is not valid YAML (the error is in errs).
func parseLevel(file string, depth int, data []byte, errs *errorList) *level {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		line := unreadableLine(data)
		if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		errs.add(Source{File: file, Line: line}, "not valid YAML: %s", msg)
		return nil
	}
	lv := &level{file: file, depth: depth}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return lv // an empty file sets nothing
	}
	d := &decoder{file: file, depth: depth, errs: errs}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return lv
	}
	d.mapping(root, "config.yaml", topKeys, func(key string, k, v *yaml.Node) {
		switch key {
		case "packager":
			if s := d.scalar(v, key); s != nil {
				if d.checkPackager(v, s.val) {
					lv.packager = s
				} else {
					lv.badPackager = true
				}
			} else {
				lv.badPackager = true
			}
		case "suite":
			lv.suite = d.token(v, key)
		case "releasever":
			lv.releasever = d.token(v, key)
		case "variant":
			if s := d.scalar(v, key); s != nil {
				if !slices.Contains(Variants(), s.val) {
					d.errorf(v, "unknown variant %q%s", s.val, suggest(s.val, Variants()))
				} else {
					lv.variant = s
				}
			}
		case "bootstrap":
			if s := d.scalar(v, key); s != nil {
				if !slices.Contains(Bootstrappers(), s.val) {
					d.errorf(v, "unknown bootstrap %q%s", s.val, suggest(s.val, Bootstrappers()))
				} else {
					lv.bootstrap = s
				}
			}
		case "arch_name":
			lv.archName = d.token(v, key)
		case "use_cacher":
			lv.useCacher = d.flag(v, key)
		case "weak_deps":
			lv.weakDeps = d.flag(v, key)
		case "nodocs":
			lv.noDocs = d.flag(v, key)
		case "repos":
			d.mapping(v, "repos", nil, func(name string, k, v *yaml.Node) {
				if !nameRE.MatchString(name) {
					d.errorf(k, "repository name %q: use lower-case letters, digits, '.', '_' and '-'", name)
					return
				}
				if r := d.repo(name, k, v); r != nil {
					lv.repos = append(lv.repos, r)
				}
			})
		case "keys":
			lv.keys = d.listOps(v, "keys", d.nonEmpty)
		case "fixups":
			lv.fixups = d.listOps(v, "fixups", d.fixupName)
		case "hooks":
			lv.hooks = map[Phase]*listOps[item]{}
			phases := make([]string, 0, len(Phases()))
			for _, p := range Phases() {
				phases = append(phases, string(p))
			}
			d.mapping(v, "hooks", phases, func(phase string, k, v *yaml.Node) {
				if ops := d.listOps(v, "hooks."+phase, d.hookPath); ops != nil {
					lv.hooks[Phase(phase)] = ops
				}
			})
		case "sets":
			d.mapping(v, "sets", nil, func(name string, k, v *yaml.Node) {
				if !nameRE.MatchString(name) {
					d.errorf(k, "set name %q: use lower-case letters, digits, '.', '_' and '-'", name)
					return
				}
				if s := d.set(name, k, v); s != nil {
					lv.sets = append(lv.sets, s)
				}
			})
		}
	})
	return lv
}

// unreadableLine returns the line of the first character YAML does not allow
// (invalid UTF-8, most control characters), or 1. It places the errors for
// which yaml.v3 names no line: those and the ones on the first line.
func unreadableLine(data []byte) int {
	line := 1
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		switch {
		case r == utf8.RuneError && size == 1,
			r < 0x20 && r != '\t' && r != '\n' && r != '\r',
			r >= 0x7f && r < 0xa0 && r != 0x85,
			r >= 0xd800 && r < 0xe000, r == 0xfffe, r == 0xffff:
			return line
		case r == '\n':
			line++
		}
		data = data[size:]
	}
	return 1
}

func (d *decoder) checkPackager(n *yaml.Node, v string) bool {
	switch {
	case v == PackagerApt, v == PackagerDnf:
		return true
	case strings.HasPrefix(v, PackagerScript+":"):
		if name := strings.TrimPrefix(v, PackagerScript+":"); !scriptRE.MatchString(name) {
			d.errorf(n, "packager %q: the script packager name must be lower-case letters, digits, '_' and '-' (e.g. script:pacman)", v)
			return false
		}
		return true
	}
	d.errorf(n, "unknown packager %q (use apt, dnf or script:NAME)", v)
	return false
}

func (d *decoder) set(name string, k, v *yaml.Node) *setDecl {
	s := &setDecl{name: name, src: d.src(k)}
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return s // "name:" alone declares an empty set
	}
	ok := d.mapping(v, "set "+name, setKeys, func(key string, k, v *yaml.Node) {
		switch key {
		case "include":
			s.include = append(s.include, d.items(v, "include", d.setName)...)
		case "packages":
			if ops := d.listOps(v, "packages", d.nonEmpty); ops != nil {
				s.packages = *ops
			}
		case "dummies":
			if ops := d.dummyOps(v); ops != nil {
				s.dummies = *ops
			}
		case "path_exclude":
			if ops := d.listOps(v, key, d.pathPattern); ops != nil {
				s.pathExclude = *ops
			}
		case "path_include":
			if ops := d.listOps(v, key, d.pathPattern); ops != nil {
				s.pathInclude = *ops
			}
		case "weak_deps":
			s.weakDeps = d.flag(v, key)
		case "nodocs":
			s.noDocs = d.flag(v, key)
		}
	})
	if !ok {
		return nil
	}
	return s
}

func (d *decoder) repo(name string, k, v *yaml.Node) *repoDecl {
	r := &repoDecl{name: name, src: d.src(k)}
	ok := d.mapping(v, "repository "+name, repoKeys, func(key string, k, v *yaml.Node) {
		switch key {
		case "mirrors":
			r.mirrors = d.strList(v, key, d.url)
		case "suites":
			r.suites = d.strList(v, key, d.nonEmpty)
		case "components":
			r.components = d.strList(v, key, d.nonEmpty)
		case "keys":
			r.keys = d.strList(v, key, d.nonEmpty)
		case "metalink":
			if s := d.scalar(v, key); s != nil && d.url(v, s.val) {
				r.metalink = s
			}
		case "mirrorlist":
			if s := d.scalar(v, key); s != nil && d.url(v, s.val) {
				r.mirrorlist = s
			}
		case "enabled":
			r.enabled = d.flag(v, key)
		}
	})
	if !ok {
		return nil
	}
	return r
}

// listOps decodes a list change: a plain list (shorthand for add) or a mapping
// with reset, add and remove.
func (d *decoder) listOps(n *yaml.Node, what string, check func(*yaml.Node, string) bool) *listOps[item] {
	ops := &listOps[item]{}
	if n.Kind == yaml.SequenceNode {
		ops.add = d.items(n, what, check)
		return ops
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s: want a list or a mapping with reset/add/remove, got %s", what, kindName(n))
		return nil
	}
	d.mapping(n, what, opsKeys, func(key string, k, v *yaml.Node) {
		switch key {
		case "reset":
			if f := d.flag(v, what+".reset"); f != nil && f.val {
				ops.reset = &f.src
			}
		case "add":
			ops.add = d.items(v, what+".add", check)
		case "remove":
			ops.remove = d.items(v, what+".remove", check)
		}
	})
	return ops
}

func (d *decoder) dummyOps(n *yaml.Node) *listOps[dummyItem] {
	ops := &listOps[dummyItem]{}
	addDummies := func(n *yaml.Node, what string) {
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, "%s: want a list, got %s", what, kindName(n))
			return
		}
		for _, e := range n.Content {
			if di := d.dummy(e); di != nil {
				ops.add = append(ops.add, *di)
			}
		}
	}
	if n.Kind == yaml.SequenceNode {
		addDummies(n, "dummies")
		return ops
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "dummies: want a list or a mapping with reset/add/remove, got %s", kindName(n))
		return nil
	}
	d.mapping(n, "dummies", opsKeys, func(key string, k, v *yaml.Node) {
		switch key {
		case "reset":
			if f := d.flag(v, "dummies.reset"); f != nil && f.val {
				ops.reset = &f.src
			}
		case "add":
			addDummies(v, "dummies.add")
		case "remove":
			ops.remove = d.items(v, "dummies.remove", d.nonEmpty)
		}
	})
	return ops
}

func (d *decoder) dummy(n *yaml.Node) *dummyItem {
	di := &dummyItem{src: d.src(n)}
	ok := d.mapping(n, "dummy package", dummyKeys, func(key string, k, v *yaml.Node) {
		switch key {
		case "name":
			if s := d.scalar(v, key); s != nil && d.nonEmpty(v, s.val) {
				di.d.Name = s.val
			}
		case "version":
			if s := d.scalar(v, key); s != nil && d.nonEmpty(v, s.val) {
				di.d.Version = s.val
			}
		case "provides":
			for _, it := range d.items(v, "provides", d.nonEmpty) {
				di.d.Provides = append(di.d.Provides, it.val)
			}
		}
	})
	if !ok {
		return nil
	}
	if di.d.Name == "" || di.d.Version == "" {
		d.errorf(n, "dummy package needs a name and a version (e.g. {name: udev, version: \"99:1.0-vz\", provides: [udev]})")
		return nil
	}
	return di
}

// mapping checks that n is a mapping and calls fn for each key in order. known
// lists the allowed keys (nil: any). It reports unknown and repeated keys and
// returns false when n is not a mapping.
func (d *decoder) mapping(n *yaml.Node, what string, known []string, fn func(key string, k, v *yaml.Node)) bool {
	if n.Kind == yaml.AliasNode {
		d.errorf(n, "%s: YAML aliases are not supported; write the value out", what)
		return false
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s: want a mapping, got %s", what, kindName(n))
		return false
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, "%s: keys must be plain words", what)
			continue
		}
		key := k.Value
		if known != nil && !slices.Contains(known, key) {
			d.errorf(k, "unknown key %q in %s%s", key, what, suggest(key, known))
			continue
		}
		if first, dup := seen[key]; dup {
			d.errorf(k, "%s: key %q given twice (first on line %d)", what, key, first)
			continue
		}
		seen[key] = k.Line
		if v.Kind == yaml.AliasNode {
			d.errorf(v, "%s: YAML aliases are not supported; write the value out", key)
			continue
		}
		fn(key, k, v)
	}
	return true
}

// scalar decodes a string value. Numbers are accepted as written ("22.04").
func (d *decoder) scalar(n *yaml.Node, what string) *scalar {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int" && n.Tag != "!!float") {
		d.errorf(n, "%s: want a string, got %s", what, kindName(n))
		return nil
	}
	return &scalar{val: n.Value, src: d.src(n)}
}

// token decodes a non-empty string without spaces.
func (d *decoder) token(n *yaml.Node, what string) *scalar {
	s := d.scalar(n, what)
	if s == nil || !d.nonEmpty(n, s.val) {
		return nil
	}
	return s
}

func (d *decoder) flag(n *yaml.Node, what string) *boolVal {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		got := kindName(n)
		if n.Kind == yaml.ScalarNode {
			got = strconv.Quote(n.Value)
		}
		d.errorf(n, "%s: want true or false, got %s", what, got)
		return nil
	}
	return &boolVal{val: n.Value == "true", src: d.src(n)}
}

// items decodes a list of strings, each checked by check.
func (d *decoder) items(n *yaml.Node, what string, check func(*yaml.Node, string) bool) []item {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "%s: want a list, got %s", what, kindName(n))
		return nil
	}
	var out []item
	for _, e := range n.Content {
		s := d.scalar(e, what+" item")
		if s == nil || !check(e, s.val) {
			continue
		}
		out = append(out, item{val: s.val, src: s.src})
	}
	return out
}

func (d *decoder) strList(n *yaml.Node, what string, check func(*yaml.Node, string) bool) *strList {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "%s: want a list, got %s", what, kindName(n))
		return nil
	}
	return &strList{vals: d.items(n, what, check), src: d.src(n)}
}

func (d *decoder) nonEmpty(n *yaml.Node, v string) bool {
	if v == "" || strings.ContainsAny(v, badItemRune) {
		d.errorf(n, "%q: want a non-empty word without spaces, quotes or shell characters", v)
		return false
	}
	return true
}

// hookPath checks a hook script's path: relative to the file's directory,
// and inside the tree the file belongs to (whose root is depth levels up).
func (d *decoder) hookPath(n *yaml.Node, v string) bool {
	if !d.nonEmpty(n, v) {
		return false
	}
	const fix = "put it in the tree (e.g. in _hooks/) and give its path relative to this file's directory"
	if filepath.IsAbs(v) {
		d.errorf(n, "hook script %q is an absolute path; %s", v, fix)
		return false
	}
	// The file's level seen from the root, as placeholder directory names.
	level := strings.Repeat("l/", d.depth)
	if !filepath.IsLocal(filepath.Join(level, v)) {
		d.errorf(n, "hook script %q is outside the template tree; %s", v, fix)
		return false
	}
	return true
}

// pathPattern checks a dpkg path filter: an absolute glob pattern, as dpkg's
// --path-exclude takes it, without spaces or quotes.
func (d *decoder) pathPattern(n *yaml.Node, v string) bool {
	if !strings.HasPrefix(v, "/") || strings.ContainsAny(v, badItemRune) {
		d.errorf(n, "%q: want an absolute path pattern without spaces or quotes (e.g. /usr/share/doc/*)", v)
		return false
	}
	return true
}

func (d *decoder) setName(n *yaml.Node, v string) bool {
	if !nameRE.MatchString(v) {
		d.errorf(n, "include %q: not a set name", v)
		return false
	}
	return true
}

func (d *decoder) fixupName(n *yaml.Node, v string) bool {
	if _, ok := lookupFixup(v); !ok {
		names := make([]string, 0, len(Fixups()))
		for _, f := range Fixups() {
			names = append(names, f.Name)
		}
		d.errorf(n, "unknown fixup %q%s", v, suggest(v, names))
		return false
	}
	return true
}

func (d *decoder) url(n *yaml.Node, v string) bool {
	if strings.ContainsAny(v, " \t\n\"'`") {
		d.errorf(n, "%q: a URL cannot contain spaces or quotes", v)
		return false
	}
	if !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
		d.errorf(n, "%q: want an http:// or https:// URL", v)
		return false
	}
	return true
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "nothing"
		case "!!bool":
			return "true/false"
		case "!!int", "!!float":
			return "a number"
		}
		return "a string"
	}
	return "nothing"
}
