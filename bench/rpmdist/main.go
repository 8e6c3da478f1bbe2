// Command rpmdist builds, for bench/template.sh, a signed yum/dnf repository
// of a small RPM distribution made of the host's own Debian packages: the
// packages of -roots installed here and every package they depend on, each
// turned into an RPM holding the same files (usr-merged, owned by root), with
// its dependencies as Requires, no scriptlets, an EL-like xz payload. A
// filesystem package lays out the usr-merged tree. Configuration files
// (dpkg's conffiles) are left out: the host's configuration stays on the host.
//
// The repository goes to -out (Packages/, repodata/ and RPM-GPG-KEY-vzbench,
// the public key that signed every package). It needs rpm (rpmbuild,
// rpmsign), createrepo-c and gnupg.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// debPkg is an installed package of the host's dpkg database.
type debPkg struct {
	name, version, arch string
	deps                [][]string // clauses of Pre-Depends and Depends, each a list of alternatives
	rpmArch             string
	requires            []string
	files, links        []string // usr-merged paths; the host path of each is in src
	src                 map[string]string
}

const filesystem = "vzb-filesystem"

var (
	pathOK   = regexp.MustCompile(`^/[A-Za-z0-9._+/@:,=~-]+$`)
	verChars = regexp.MustCompile(`[^A-Za-z0-9.+~]`)
)

func main() {
	out := flag.String("out", "", "repository directory to create (must not exist)")
	roots := flag.String("roots", "", "comma-separated Debian packages the distribution is made of, with what they depend on")
	flag.Parse()
	if *out == "" || *roots == "" {
		log.Fatal("usage: rpmdist -out DIR -roots PKG,PKG...")
	}
	dest, err := filepath.Abs(*out)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := os.Stat(dest); err == nil {
		log.Fatalf("%s exists", dest)
	}
	installed, provides, err := readStatus("/var/lib/dpkg/status")
	if err != nil {
		log.Fatal(err)
	}
	pkgs := closure(strings.Split(*roots, ","), installed, provides)
	claimed := map[string]bool{}
	for _, p := range pkgs {
		if err := p.collect(claimed); err != nil {
			log.Fatal(err)
		}
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dest), ".rpmdist-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	repo := filepath.Join(tmp, "repo")

	// One rpmbuild per CPU.
	var wg sync.WaitGroup
	jobs := make(chan *debPkg)
	errs := make(chan error, len(pkgs)+1)
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range jobs {
				if err := p.build(filepath.Join(tmp, "stage", p.name), repo); err != nil {
					errs <- err
				}
			}
		}()
	}
	fs := &debPkg{name: filesystem, version: "1.0", rpmArch: "noarch", src: map[string]string{}}
	for _, p := range append([]*debPkg{fs}, pkgs...) {
		jobs <- p
	}
	close(jobs)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		log.Fatal(err)
	}
	if err := sign(tmp, repo); err != nil {
		log.Fatal(err)
	}
	if err := run(nil, "createrepo_c", "--quiet", repo); err != nil {
		log.Fatal(err)
	}
	if err := os.Rename(repo, dest); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d packages (and %s) in %s\n", len(pkgs), filesystem, dest)
}

// readStatus reads dpkg's status file: the installed packages of the host's
// architecture (and "all") by name, and the providers of virtual packages.
func readStatus(file string) (map[string]*debPkg, map[string]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, err
	}
	host := strings.TrimSpace(string(must(exec.Command("dpkg", "--print-architecture").Output())))
	installed, provides := map[string]*debPkg{}, map[string]string{}
	for _, para := range strings.Split(string(data), "\n\n") {
		f := fields(para)
		if f["Status"] != "install ok installed" || (f["Architecture"] != host && f["Architecture"] != "all") {
			continue
		}
		p := &debPkg{name: f["Package"], version: f["Version"], arch: f["Architecture"], src: map[string]string{}}
		for _, k := range []string{"Pre-Depends", "Depends"} {
			for _, clause := range splitList(f[k], ",") {
				p.deps = append(p.deps, splitList(clause, "|"))
			}
		}
		installed[p.name] = p
		for _, v := range splitList(f["Provides"], ",") {
			if _, ok := provides[bare(v)]; !ok {
				provides[bare(v)] = p.name
			}
		}
	}
	return installed, provides, nil
}

// fields parses one paragraph of a control file (continuation lines joined).
func fields(para string) map[string]string {
	f := map[string]string{}
	key := ""
	for _, l := range strings.Split(para, "\n") {
		if strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") {
			if key != "" {
				f[key] += " " + strings.TrimSpace(l)
			}
			continue
		}
		if k, v, ok := strings.Cut(l, ":"); ok {
			key = k
			f[k] = strings.TrimSpace(v)
		}
	}
	return f
}

func splitList(s, sep string) []string {
	var out []string
	for _, x := range strings.Split(s, sep) {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// bare is a relation's package name: no version, no architecture qualifier.
func bare(rel string) string {
	name, _, _ := strings.Cut(rel, " ")
	name, _, _ = strings.Cut(name, "(")
	name, _, _ = strings.Cut(name, ":")
	return strings.TrimSpace(name)
}

// closure returns the roots and the installed packages they need, each
// dependency met by its first alternative installed (directly or through a
// provider), sorted by name, with their Requires set.
func closure(roots []string, installed map[string]*debPkg, provides map[string]string) []*debPkg {
	resolve := func(alts []string) string {
		for _, a := range alts {
			if _, ok := installed[bare(a)]; ok {
				return bare(a)
			}
			if p, ok := provides[bare(a)]; ok {
				return p
			}
		}
		return ""
	}
	seen := map[string]bool{}
	var queue []string
	for _, r := range roots {
		if _, ok := installed[r]; ok {
			queue = append(queue, r)
		} else {
			log.Printf("%s is not installed here: left out", r)
		}
	}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if seen[name] {
			continue
		}
		p := installed[name]
		seen[name] = true
		for _, alts := range p.deps {
			if dep := resolve(alts); dep != "" && dep != name {
				queue = append(queue, dep)
				if !slices.Contains(p.requires, dep) {
					p.requires = append(p.requires, dep)
				}
			}
		}
	}
	var out []*debPkg
	for name := range seen {
		out = append(out, installed[name])
	}
	slices.SortFunc(out, func(a, b *debPkg) int { return strings.Compare(a.name, b.name) })
	return out
}

// collect lists the package's files and symbolic links from dpkg's file
// list, at their usr-merged paths, leaving out directories, conffiles, names
// a spec file cannot hold, and paths an earlier package claimed.
func (p *debPkg) collect(claimed map[string]bool) error {
	p.rpmArch = "x86_64"
	if p.arch == "all" {
		p.rpmArch = "noarch"
	}
	info := "/var/lib/dpkg/info/" + p.name
	if _, err := os.Stat(info + ":" + p.arch + ".list"); err == nil {
		info += ":" + p.arch
	}
	list, err := os.ReadFile(info + ".list")
	if err != nil {
		return err
	}
	conf := map[string]bool{}
	if data, err := os.ReadFile(info + ".conffiles"); err == nil {
		for _, l := range strings.Fields(string(data)) {
			conf[l] = true
		}
	}
	for _, path := range strings.Split(string(list), "\n") {
		if !pathOK.MatchString(path) || conf[path] {
			continue
		}
		fi, err := os.Lstat(path)
		if err != nil || fi.IsDir() {
			continue
		}
		dst := path
		for _, d := range []string{"/bin/", "/sbin/", "/lib/", "/lib64/"} {
			if strings.HasPrefix(path, d) {
				dst = "/usr" + path
			}
		}
		if claimed[dst] {
			continue
		}
		claimed[dst] = true
		p.src[dst] = path
		if fi.Mode()&os.ModeSymlink != 0 {
			p.links = append(p.links, dst)
		} else if fi.Mode().IsRegular() {
			p.files = append(p.files, dst)
		}
	}
	return nil
}

// build stages the package's files in stage and builds its RPM into
// repo/Packages/<initial>/.
func (p *debPkg) build(stage, repo string) error {
	root := filepath.Join(stage, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	var files bytes.Buffer
	if p.name == filesystem {
		for _, d := range []string{"/usr/bin", "/usr/sbin", "/usr/lib", "/usr/lib64", "/etc", "/var", "/tmp", "/root", "/proc", "/sys", "/dev", "/run"} {
			os.MkdirAll(root+d, 0o755)
			fmt.Fprintf(&files, "%%dir %s\n", d)
		}
		for _, l := range []string{"bin", "sbin", "lib", "lib64"} {
			os.Symlink("usr/"+l, filepath.Join(root, l))
			fmt.Fprintf(&files, "/%s\n", l)
		}
	}
	for _, f := range p.files {
		if err := copyFile(p.src[f], root+f); err != nil {
			return err
		}
		fmt.Fprintln(&files, f)
	}
	for _, l := range p.links {
		target, err := os.Readlink(p.src[l])
		if err != nil {
			return err
		}
		os.MkdirAll(filepath.Dir(root+l), 0o755)
		if err := os.Symlink(target, root+l); err != nil {
			return err
		}
		fmt.Fprintln(&files, l)
	}
	version := p.version
	if _, v, ok := strings.Cut(version, ":"); ok {
		version = v
	}
	if i := strings.LastIndex(version, "-"); i > 0 {
		version = version[:i]
	}
	var spec strings.Builder
	fmt.Fprintf(&spec, "Name: %s\nVersion: %s\nRelease: 1.vzb\nSummary: the host's %s\nLicense: see Debian\nBuildArch: %s\nAutoReqProv: no\n",
		p.name, verChars.ReplaceAllString(version, "."), p.name, p.rpmArch)
	if p.name != filesystem {
		fmt.Fprintf(&spec, "Requires: %s\n", filesystem)
	}
	for _, r := range p.requires {
		fmt.Fprintf(&spec, "Requires: %s\n", r)
	}
	fmt.Fprintf(&spec, "\n%%description\nThe files of the host's Debian package %s.\n\n%%install\ncp -a %s/. %%{buildroot}/\n\n%%files\n%s", p.name, root, files.String())
	specFile := filepath.Join(stage, p.name+".spec")
	if err := os.WriteFile(specFile, []byte(spec.String()), 0o644); err != nil {
		return err
	}
	top := filepath.Join(stage, "top")
	if err := run([]string{"HOME=" + stage, "SOURCE_DATE_EPOCH=1700000000"}, "rpmbuild", "--quiet", "-bb",
		"--define", "_topdir "+top,
		"--define", "_build_id_links none",
		"--define", "debug_package %{nil}",
		"--define", "__os_install_post %{nil}",
		"--define", "_binary_payload w2.xzdio", // EL 8 and 9's payload
		"--define", "use_source_date_epoch_as_buildtime 1",
		specFile); err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	built, err := filepath.Glob(filepath.Join(top, "RPMS", p.rpmArch, "*.rpm"))
	if err != nil || len(built) != 1 {
		return fmt.Errorf("%s: rpmbuild made %v", p.name, built)
	}
	dir := filepath.Join(repo, "Packages", strings.ToLower(p.name[:1]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Rename(built[0], filepath.Join(dir, filepath.Base(built[0]))); err != nil {
		return err
	}
	return os.RemoveAll(stage)
}

// sign signs every package in repo with a key made for it, kept in a
// GnuPG home under tmp, and writes its public key to repo/RPM-GPG-KEY-vzbench.
func sign(tmp, repo string) error {
	home, err := os.MkdirTemp("", "rpmdist-gpg") // gpg-agent's socket path must stay short
	if err != nil {
		return err
	}
	defer os.RemoveAll(home)
	env := []string{"GNUPGHOME=" + home, "HOME=" + tmp}
	defer run(env, "gpgconf", "--kill", "gpg-agent")
	gpg := []string{"gpg", "--batch", "--no-tty", "--yes", "--pinentry-mode", "loopback", "--passphrase", ""}
	if err := run(env, append(gpg, "--quick-gen-key", "vzbench <vzbench@example.invalid>", "rsa2048", "sign", "never")...); err != nil {
		return err
	}
	key, err := output(env, append(gpg, "--armor", "--export")...)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(repo, "RPM-GPG-KEY-vzbench"), key, 0o644); err != nil {
		return err
	}
	rpms, err := filepath.Glob(filepath.Join(repo, "Packages", "*", "*.rpm"))
	if err != nil {
		return err
	}
	gpgPath, err := exec.LookPath("gpg")
	if err != nil {
		return err
	}
	return run(env, append([]string{"rpmsign", "--addsign", "--define", "_gpg_name vzbench", "--define", "_gpg_path " + home, "--define", "__gpg " + gpgPath}, rpms...)...)
}

func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(fi.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func run(env []string, argv ...string) error {
	_, err := output(env, argv...)
	return err
}

func output(env []string, argv ...string) ([]byte, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, stderr.String())
	}
	return out, nil
}

func must[T any](v T, err error) T {
	if err != nil {
		log.Fatal(err)
	}
	return v
}
