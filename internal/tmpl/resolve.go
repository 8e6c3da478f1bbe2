package tmpl

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// chain is the configuration of one distro/version/arch position: every level
// from the root to the architecture directory, most general first.
type chain struct {
	distro, version, arch string
	dir                   string // the architecture directory of the highest-priority root
	distroSrc             Source // where a distribution-wide setting belongs
	levels                []*level
}

func newChain(n *node, nodes map[string]*node) *chain {
	parts := strings.Split(n.rel, "/")
	c := &chain{distro: parts[0], version: parts[1], arch: parts[2], dir: n.dirs[len(n.dirs)-1]}
	for _, rel := range []string{"", parts[0], parts[0] + "/" + parts[1], n.rel} {
		if p := nodes[rel]; p != nil {
			c.levels = append(c.levels, p.levels...)
		}
	}
	c.distroSrc = Source{File: nodes[parts[0]].dirs[len(nodes[parts[0]].dirs)-1]}
	for _, lv := range c.levels {
		if lv.depth == 1 {
			c.distroSrc = Source{File: lv.file, Line: 1}
		}
	}
	return c
}

// result is one template of a chain: its definition, or the problems that
// kept it from resolving.
type result struct {
	name string
	set  string
	src  Source // where the template's set is declared
	def  *Definition
	errs Errors
}

var placeholderRE = regexp.MustCompile(`\$\{[^{}]*\}`)

// resolve merges the chain's levels and resolves each of its sets, in
// steps: the scalars, then the lists with their placeholders expanded, the
// checks of the merged whole, the hook files, and the sets, each into a
// Definition.
func (c *chain) resolve() []result {
	var el errorList
	base := c.mergeScalars(&el)
	expand := expander(base, &el)
	c.mergeLists(base, expand, &el)
	c.validate(base, &el)
	locateHooks(base, &el)
	return c.resolveSets(base, expand, &el)
}

// mergeScalars is the Definition the chain's scalars make, each level
// overriding the one above, with their provenance.
func (c *chain) mergeScalars(el *errorList) *Definition {
	base := &Definition{
		Distro:     c.distro,
		Version:    c.version,
		Arch:       c.arch,
		ArchName:   c.arch,
		Provenance: map[string]Source{},
	}
	archDir := Source{File: c.dir}
	base.Provenance["distro"] = archDir
	base.Provenance["version"] = archDir
	base.Provenance["arch"] = archDir

	var packager *scalar
	badPackager := false
	for _, lv := range c.levels {
		badPackager = badPackager || lv.badPackager
		setScalar := func(key string, s *scalar, dst *string) {
			if s != nil {
				*dst = s.val
				base.Provenance[key] = s.src
			}
		}
		if lv.packager != nil {
			packager = lv.packager
		}
		setScalar("suite", lv.suite, &base.Suite)
		setScalar("releasever", lv.releasever, &base.Releasever)
		setScalar("variant", lv.variant, &base.Variant)
		setScalar("bootstrap", lv.bootstrap, &base.Bootstrap)
		setScalar("arch_name", lv.archName, &base.ArchName)
		setFlag("use_cacher", lv.useCacher, &base.UseCacher, base)
		setFlag("weak_deps", lv.weakDeps, &base.WeakDeps, base)
		setFlag("nodocs", lv.noDocs, &base.NoDocs, base)
	}
	if packager == nil && !badPackager {
		el.add(c.distroSrc, "no packager set; add `packager: apt`, `packager: dnf` or `packager: script:NAME`")
	} else if packager != nil {
		base.Packager, base.ScriptPackager, _ = strings.Cut(packager.val, ":")
		base.Provenance["packager"] = packager.src
	}
	return base
}

// setFlag sets *dst to b's value, with its provenance, when b is given.
func setFlag(key string, b *boolVal, dst *bool, d *Definition) {
	if b != nil {
		*dst = b.val
		d.Provenance[key] = b.src
	}
}

// expander expands the placeholders (${arch}, ${suite} ...) of an item with
// base's values; it reports false, and adds to el, when one is unknown,
// empty or misspelt.
func expander(base *Definition, el *errorList) func(item) (item, bool) {
	vars := map[string]string{
		"distro":     base.Distro,
		"version":    base.Version,
		"arch":       base.ArchName,
		"suite":      base.Suite,
		"releasever": base.Releasever,
	}
	return func(it item) (item, bool) {
		ok := true
		orig := it.val
		it.val = placeholderRE.ReplaceAllStringFunc(it.val, func(m string) string {
			name := m[2 : len(m)-1]
			v, known := vars[name]
			switch {
			case !known:
				el.add(it.src, "unknown placeholder %s%s", m, suggest(name, slices.Sorted(maps.Keys(vars))))
				ok = false
			case v == "":
				el.add(it.src, "placeholder %s is empty here; set %s", m, name)
				ok = false
			}
			return v
		})
		if ok && strings.Contains(placeholderRE.ReplaceAllString(orig, ""), "$") {
			el.add(it.src, "%q: write placeholders as ${name} (known: ${arch}, ${distro}, ${releasever}, ${suite}, ${version}); vzpkg expands them itself", orig)
			ok = false
		}
		return it, ok
	}
}

// mergeLists applies the levels' operations on the repositories, keys,
// fixups and hooks to base.
func (c *chain) mergeLists(base *Definition, expand func(item) (item, bool), el *errorList) {
	c.mergeRepos(base, expand, el)
	base.Keys = c.mergeList("keys", func(lv *level) *listOps[item] { return lv.keys }, base, expand, el, nil)
	base.Fixups = c.mergeList("fixups", func(lv *level) *listOps[item] { return lv.fixups }, base, expand, el, nil)
	for _, ph := range Phases() {
		what := "hooks." + string(ph)
		paths := c.mergeList(what, func(lv *level) *listOps[item] { return lv.hooks[ph] }, base, func(it item) (item, bool) { return it, true }, el, hookConflict(what))
		if len(paths) > 0 {
			if base.Hooks == nil {
				base.Hooks = map[Phase][]string{}
			}
			base.Hooks[ph] = paths
		}
	}
}

// resolveSets resolves every set the chain declares into a template: its
// Definition, or the errors of the chain and of the set.
func (c *chain) resolveSets(base *Definition, expand func(item) (item, bool), el *errorList) []result {
	sr := &setResolver{chain: c, expand: expand, decls: map[string][]*setDecl{}, memo: map[string]*resolvedSet{}, errs: el}
	var setNames []string
	for _, lv := range c.levels {
		for _, s := range lv.sets {
			if _, seen := sr.decls[s.name]; !seen {
				setNames = append(setNames, s.name)
			}
			sr.decls[s.name] = append(sr.decls[s.name], s)
		}
	}
	if len(setNames) == 0 {
		el.add(c.distroSrc, "no package sets for %s/%s/%s; define `sets: {default: ...}` here or in a more specific config.yaml", c.distro, c.version, c.arch)
	}
	chainErrs := len(el.errs)

	var out []result
	for _, name := range setNames {
		rs := sr.resolve(name, nil)
		r := result{name: TemplateName(c.distro, c.version, c.arch, name), set: name, src: sr.decls[name][0].src}
		if chainErrs > 0 || len(rs.errs) > 0 {
			// Problems of the chain, and those found while resolving this set.
			r.errs = append(slices.Clone(el.errs[:chainErrs]), rs.errs...)
			out = append(out, r)
			continue
		}
		d := definition(base, r, rs)
		// A set's own weak_deps and nodocs (not its included sets')
		// override the tree's, the most specific level last.
		for _, s := range sr.decls[name] {
			setFlag("weak_deps", s.weakDeps, &d.WeakDeps, d)
			setFlag("nodocs", s.noDocs, &d.NoDocs, d)
		}
		if errs := checkSet(d, rs); len(errs) > 0 {
			r.errs = errs
			out = append(out, r)
			continue
		}
		r.def = d
		out = append(out, r)
	}
	return out
}

// definition is the template r: base with the resolved set rs.
func definition(base *Definition, r result, rs *resolvedSet) *Definition {
	d := *base
	d.Set = r.set
	d.Name = r.name
	d.Repos = slices.Clone(base.Repos)
	d.Keys = slices.Clone(base.Keys)
	d.Fixups = slices.Clone(base.Fixups)
	d.Hooks = maps.Clone(base.Hooks)
	d.Provenance = maps.Clone(base.Provenance)
	d.Provenance["set"] = r.src
	for _, it := range rs.packages {
		d.Packages = append(d.Packages, it.val)
		d.Provenance["packages["+it.val+"]"] = it.src
	}
	for _, di := range rs.dummies {
		d.Dummies = append(d.Dummies, di.d)
		d.Provenance["dummies["+di.d.Name+"]"] = di.src
	}
	for _, it := range rs.pathExclude {
		d.PathExclude = append(d.PathExclude, it.val)
		d.Provenance["path_exclude["+it.val+"]"] = it.src
	}
	for _, it := range rs.pathInclude {
		d.PathInclude = append(d.PathInclude, it.val)
		d.Provenance["path_include["+it.val+"]"] = it.src
	}
	return &d
}

// checkSet reports what of the set the template cannot use: dpkg's path
// filters on a template of another packager, includes with nothing
// excluded, and nodocs on an apt template.
func checkSet(d *Definition, rs *resolvedSet) Errors {
	var el errorList
	if d.NoDocs && d.Packager == PackagerApt {
		el.add(d.Provenance["nodocs"], "nodocs is for dnf templates; an apt template leaves documentation out with path_exclude (e.g. path_exclude: [/usr/share/doc/*, /usr/share/man/*]), or set nodocs: false here")
	}
	filters := append(slices.Clone(rs.pathExclude), rs.pathInclude...)
	if len(filters) > 0 && d.Packager != PackagerApt {
		el.add(filters[0].src, "path_exclude and path_include are dpkg path filters, for apt templates; this one uses %s", d.Packager)
	} else if len(rs.pathExclude) == 0 && len(rs.pathInclude) > 0 {
		el.add(rs.pathInclude[0].src, "set %q has path_include but no path_exclude, so it re-includes nothing; add path_exclude or drop path_include", d.Set)
	}
	return el.errs
}

// mergeRepos layers the repository declarations: each field given replaces
// the inherited one, `enabled: false` drops the repository.
func (c *chain) mergeRepos(d *Definition, expand func(item) (item, bool), el *errorList) {
	var order []string
	merged := map[string]*repoDecl{}
	for _, lv := range c.levels {
		for _, r := range lv.repos {
			m := merged[r.name]
			if m == nil {
				m = &repoDecl{name: r.name, src: r.src}
				merged[r.name] = m
				order = append(order, r.name)
			}
			for _, f := range []struct{ dst, src **strList }{
				{&m.mirrors, &r.mirrors}, {&m.suites, &r.suites}, {&m.components, &r.components}, {&m.keys, &r.keys},
			} {
				if *f.src != nil {
					*f.dst = *f.src
				}
			}
			if r.metalink != nil {
				m.metalink = r.metalink
			}
			if r.mirrorlist != nil {
				m.mirrorlist = r.mirrorlist
			}
			if r.enabled != nil {
				m.enabled = r.enabled
			}
		}
	}
	for _, name := range order {
		m := merged[name]
		if m.enabled != nil && !m.enabled.val {
			continue
		}
		key := "repos." + name
		d.Provenance[key] = m.src
		repo := Repo{Name: name}
		list := func(field string, l *strList) []string {
			if l == nil {
				return nil
			}
			d.Provenance[key+"."+field] = l.src
			var vals []string
			for _, it := range l.vals {
				if it, ok := expand(it); ok {
					vals = append(vals, it.val)
				}
			}
			return vals
		}
		one := func(field string, s *scalar) string {
			if s == nil {
				return ""
			}
			d.Provenance[key+"."+field] = s.src
			it, _ := expand(item{val: s.val, src: s.src})
			return it.val
		}
		repo.Mirrors = list("mirrors", m.mirrors)
		repo.Suites = list("suites", m.suites)
		repo.Components = list("components", m.components)
		repo.Keys = list("keys", m.keys)
		repo.Metalink = one("metalink", m.metalink)
		repo.Mirrorlist = one("mirrorlist", m.mirrorlist)
		d.Repos = append(d.Repos, repo)
	}
}

// mergeList applies every level's changes to one list. conflict, when not
// nil, is asked about an item added while one of the same value is in the
// list; a non-empty answer is reported at the new item.
func (c *chain) mergeList(what string, get func(*level) *listOps[item], d *Definition, expand func(item) (item, bool), el *errorList, conflict func(had, it item) string) []string {
	acc := newKeyedList(func(it item) string { return it.val })
	for _, lv := range c.levels {
		ops := get(lv)
		if ops == nil {
			continue
		}
		applyOps(acc, ops, what, expand, el, conflict)
	}
	items := acc.list()
	vals := make([]string, len(items))
	for i, it := range items {
		vals[i] = it.val
		d.Provenance[what+"["+it.val+"]"] = it.src
	}
	return vals
}

// applyOps applies one level's reset, add and remove to acc; conflict is
// as for mergeList.
func applyOps(acc *keyedList[item], ops *listOps[item], what string, expand func(item) (item, bool), el *errorList, conflict func(had, it item) string) {
	if ops.reset != nil {
		acc.reset()
	}
	for _, it := range ops.add {
		if it, ok := expand(it); ok {
			// Already there: it keeps its place and origin.
			if had, dup := acc.add(it); dup && conflict != nil {
				if msg := conflict(had, it); msg != "" {
					el.add(it.src, "%s", msg)
				}
			}
		}
	}
	removeItems(acc, ops.remove, what, expand, el)
}

func removeItems(acc *keyedList[item], remove []item, what string, expand func(item) (item, bool), el *errorList) {
	for _, it := range remove {
		it, ok := expand(it)
		if !ok {
			continue
		}
		if !acc.remove(it.val) {
			el.add(it.src, "cannot remove %q: not in %s at this point; drop the removal", it.val, what)
		}
	}
}

// keyedList is a list without two elements of the same key, in the order
// they were added. Adding, replacing and removing an element take constant
// time, so merging the lists of a tree is linear in their length: a removed
// element stays in items, skipped because index no longer points at it.
type keyedList[T any] struct {
	key   func(T) string
	items []T
	index map[string]int // key → position in items of the element present with it
}

func newKeyedList[T any](key func(T) string) *keyedList[T] {
	return &keyedList[T]{key: key, index: map[string]int{}}
}

// add appends x unless an element of its key is there; it returns that
// element and true when one is.
func (l *keyedList[T]) add(x T) (T, bool) {
	k := l.key(x)
	if i, ok := l.index[k]; ok {
		return l.items[i], true
	}
	l.index[k] = len(l.items)
	l.items = append(l.items, x)
	var zero T
	return zero, false
}

// put replaces the element of x's key in place, or appends x.
func (l *keyedList[T]) put(x T) {
	if i, ok := l.index[l.key(x)]; ok {
		l.items[i] = x
		return
	}
	l.add(x)
}

// remove removes the element of key k, reporting whether there was one.
func (l *keyedList[T]) remove(k string) bool {
	if _, ok := l.index[k]; !ok {
		return false
	}
	delete(l.index, k)
	return true
}

func (l *keyedList[T]) reset() {
	l.items = nil
	clear(l.index)
}

// list returns the elements in order.
func (l *keyedList[T]) list() []T {
	out := make([]T, 0, len(l.index))
	for i, x := range l.items {
		if j, ok := l.index[l.key(x)]; ok && j == i {
			out = append(out, x)
		}
	}
	return out
}

// hookConflict reports a hook path that names another script than the same
// path already in the list: a relative path is relative to the directory of
// its config.yaml, so the same words at two levels are two scripts, and
// keeping one of them silently would drop the other.
func hookConflict(what string) func(had, it item) string {
	return func(had, it item) string {
		a, b := filepath.Join(filepath.Dir(had.src.File), had.val), filepath.Join(filepath.Dir(it.src.File), it.val)
		if a == b {
			return ""
		}
		return fmt.Sprintf("%s: %q here is %s, but the list already has %q from %s, which is %s; give the scripts different names, or reset the list here (reset: true, add: [...])", what, it.val, b, had.val, had.src, a)
	}
}

// validate checks what a build of this packager needs.
func (c *chain) validate(d *Definition, el *errorList) {
	if d.Packager == "" {
		return
	}
	wrongField := func(key, why string) {
		if src, ok := d.Provenance[key]; ok {
			el.add(src, "%s is not used by %s templates; %s", key, d.Packager, why)
		}
	}
	switch d.Packager {
	case PackagerApt:
		if d.Suite == "" {
			el.add(c.distroSrc, "apt templates need a suite (the release codename, e.g. `suite: bookworm`) in the version's config.yaml")
		}
		wrongField("releasever", "apt uses suite")
	case PackagerDnf:
		if d.Releasever == "" {
			el.add(c.distroSrc, "dnf templates need releasever (e.g. `releasever: \"9\"`) in the version's config.yaml")
		}
		wrongField("suite", "dnf uses releasever")
		wrongField("variant", "variants are mmdebstrap's")
		wrongField("bootstrap", "dnf templates are installed by dnf")
	}
	if d.Packager == PackagerApt || d.Packager == PackagerDnf {
		if len(d.Repos) == 0 {
			el.add(c.distroSrc, "no repositories; add `repos:` with at least the distribution's main repository")
		}
		allKeyed := len(d.Repos) > 0
		for _, r := range d.Repos {
			src := d.Provenance["repos."+r.Name]
			if len(r.Keys) == 0 {
				allKeyed = false
			}
			if d.Packager == PackagerApt {
				if len(r.Mirrors) == 0 || len(r.Suites) == 0 || len(r.Components) == 0 {
					el.add(src, "apt repository %q needs mirrors, suites and components", r.Name)
				}
				for _, f := range []string{"metalink", "mirrorlist"} {
					if s, ok := d.Provenance["repos."+r.Name+"."+f]; ok {
						el.add(s, "%s is for dnf repositories; apt uses mirrors", f)
					}
				}
			} else {
				if len(r.Mirrors) == 0 && r.Metalink == "" && r.Mirrorlist == "" {
					el.add(src, "dnf repository %q needs mirrors (baseurls), a metalink or a mirrorlist", r.Name)
				}
				for _, f := range []string{"suites", "components"} {
					if s, ok := d.Provenance["repos."+r.Name+"."+f]; ok {
						el.add(s, "%s are for apt repositories; dnf uses mirrors, metalink or mirrorlist", f)
					}
				}
			}
		}
		if len(d.Keys) == 0 && !allKeyed {
			el.add(c.distroSrc, "no signing keys; add `keys:` (keyring paths for apt, key URLs for dnf) so packages are verified")
		}
	}
	for _, f := range d.Fixups {
		fx, _ := lookupFixup(f)
		if fx.Packager != "" && fx.Packager != d.Packager {
			el.add(d.Provenance["fixups["+f+"]"], "fixup %q is for %s templates, this one uses %s; remove it here", f, fx.Packager, d.Packager)
		}
	}
}

// locateHooks makes the hook paths absolute (they are relative to the file
// that names them) and checks that each is an executable file.
func locateHooks(d *Definition, el *errorList) {
	for ph, paths := range d.Hooks {
		for i, p := range paths {
			src := d.Provenance["hooks."+string(ph)+"["+p+"]"]
			full := p
			if !filepath.IsAbs(p) {
				full = filepath.Join(filepath.Dir(src.File), p)
			}
			if fi, err := os.Stat(full); err != nil || !fi.Mode().IsRegular() {
				el.add(src, "hook script %q not found (paths are relative to this file's directory)", p)
			} else if fi.Mode()&0o111 == 0 {
				el.add(src, "hook script %q is not executable; chmod +x it", p)
			}
			paths[i] = full
			if full != p {
				delete(d.Provenance, "hooks."+string(ph)+"["+p+"]")
				d.Provenance["hooks."+string(ph)+"["+full+"]"] = src
			}
		}
	}
}

// setResolver resolves the sets of one chain, remembering finished sets.
type setResolver struct {
	chain  *chain
	expand func(item) (item, bool)
	decls  map[string][]*setDecl
	memo   map[string]*resolvedSet
	stack  []frame // sets being resolved, outermost first
	errs   *errorList
}

// frame is a set being resolved and the include that led to it.
type frame struct {
	name string
	via  *item
}

type resolvedSet struct {
	packages []item
	dummies  []dummyItem
	// The set's own path filters: an include does not bring them, so a set
	// built on a slim one is slim only if it says so.
	pathExclude []item
	pathInclude []item
	errs        Errors // problems of this set and of the sets it includes
}

// resolve returns the contents of set name; via is the include that asked for it.
func (sr *setResolver) resolve(name string, via *item) *resolvedSet {
	if rs := sr.memo[name]; rs != nil {
		return rs
	}
	if i := slices.IndexFunc(sr.stack, func(f frame) bool { return f.name == name }); i >= 0 {
		start := len(sr.errs.errs)
		sr.reportCycle(sr.stack[i:], via)
		return &resolvedSet{errs: slices.Clone(sr.errs.errs[start:])}
	}
	sr.stack = append(sr.stack, frame{name: name, via: via})
	defer func() { sr.stack = sr.stack[:len(sr.stack)-1] }()

	rs := &resolvedSet{}
	start := len(sr.errs.errs)
	var innerErrs Errors
	what := fmt.Sprintf("set %q", name)
	byVal := func(it item) string { return it.val }
	packages, pathExclude, pathInclude := newKeyedList(byVal), newKeyedList(byVal), newKeyedList(byVal)
	dummies := newKeyedList(func(d dummyItem) string { return d.d.Name })
	for _, s := range sr.decls[name] {
		if s.packages.reset != nil {
			packages.reset()
		}
		if s.dummies.reset != nil {
			dummies.reset()
		}
		if s.pathExclude.reset != nil {
			pathExclude.reset()
		}
		if s.pathInclude.reset != nil {
			pathInclude.reset()
		}
		for _, inc := range s.include {
			if _, ok := sr.decls[inc.val]; !ok {
				sr.errs.add(inc.src, "set %q includes unknown set %q%s", name, inc.val, suggest(inc.val, slices.Sorted(maps.Keys(sr.decls))))
				continue
			}
			inner := sr.resolve(inc.val, &inc)
			innerErrs = append(innerErrs, inner.errs...)
			for _, it := range inner.packages {
				packages.add(it)
			}
			for _, di := range inner.dummies {
				dummies.put(di)
			}
		}
		for _, it := range s.packages.add {
			if it, ok := sr.expand(it); ok {
				packages.add(it)
			}
		}
		removeItems(packages, s.packages.remove, what, sr.expand, sr.errs)
		applyOps(pathExclude, &listOps[item]{add: s.pathExclude.add, remove: s.pathExclude.remove}, "path_exclude of "+what, sr.expand, sr.errs, nil)
		applyOps(pathInclude, &listOps[item]{add: s.pathInclude.add, remove: s.pathInclude.remove}, "path_include of "+what, sr.expand, sr.errs, nil)
		for _, di := range s.dummies.add {
			if di, ok := sr.expandDummy(di); ok {
				dummies.put(di)
			}
		}
		for _, it := range s.dummies.remove {
			if !dummies.remove(it.val) {
				sr.errs.add(it.src, "cannot remove dummy %q: not in %s at this point; drop the removal", it.val, what)
			}
		}
	}
	rs.packages, rs.dummies = packages.list(), dummies.list()
	rs.pathExclude, rs.pathInclude = pathExclude.list(), pathInclude.list()
	rs.errs = append(slices.Clone(sr.errs.errs[start:]), innerErrs...)
	sr.memo[name] = rs
	return rs
}

// reportCycle reports an include cycle once, however it was entered: the
// cycle is named from its alphabetically first set, at the include that
// leads back to that set.
func (sr *setResolver) reportCycle(frames []frame, closing *item) {
	names := make([]string, len(frames))
	edges := make([]*item, len(frames)) // edges[i]: the include leading into names[i]
	for i, f := range frames {
		names[i] = f.name
		if i > 0 {
			edges[i] = f.via
		}
	}
	edges[0] = closing
	start := 0
	for i, n := range names {
		if n < names[start] {
			start = i
		}
	}
	rot := append(slices.Clone(names[start:]), names[:start]...)
	rot = append(rot, rot[0])
	sr.errs.add(edges[start].src, "include cycle: %s; remove one of these includes", strings.Join(rot, " → "))
}

func (sr *setResolver) expandDummy(di dummyItem) (dummyItem, bool) {
	ok := true
	get := func(s string) string {
		it, good := sr.expand(item{val: s, src: di.src})
		ok = ok && good
		return it.val
	}
	out := dummyItem{src: di.src, d: Dummy{Name: get(di.d.Name), Version: get(di.d.Version)}}
	for _, p := range di.d.Provides {
		out.d.Provides = append(out.d.Provides, get(p))
	}
	return out, ok
}
