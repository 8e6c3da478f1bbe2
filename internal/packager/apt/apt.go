// Package apt builds and updates Debian and Ubuntu roots: mmdebstrap
// bootstraps them, apt-get in a chroot updates them, their dpkg status file
// lists them. Every file it reads or writes in a root is resolved inside it.
package apt

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"vzpkg2/internal/dummy"
	"vzpkg2/internal/packager"
	"vzpkg2/internal/rootfs"
	"vzpkg2/internal/tmpl"
)

// Apt is the apt packager. The zero value is ready to use.
type Apt struct{}

const (
	hookDir = "/usr/share/mmdebstrap/hooks"
	// mmdebstrapConf is where mmdebstrap leaves its --aptopt settings; a build
	// uses it only for the proxy, which the template must not keep.
	mmdebstrapConf = "etc/apt/apt.conf.d/99mmdebstrap"
	// sourcesHeader starts a sources.list written by vzpkg.
	sourcesHeader = "# Written by vzpkg: repositories through pkg-cacher. The distribution's own\n# configuration is kept beside this file as *.disabled.\n"
)

// Bootstrap runs mmdebstrap in root mode into root; debootstrap when the
// definition asks for it or mmdebstrap is not installed.
func (a Apt) Bootstrap(ctx context.Context, root string, def *tmpl.Definition, env packager.Env) error {
	filters, err := pathFilters(def)
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil || def.Bootstrap == "debootstrap" {
		return a.debootstrap(ctx, root, def, env, filters)
	}
	args := []string{"--mode=root", "--format=directory", "--variant=" + def.Variant, "--architectures=" + def.ArchName}
	if len(filters) > 0 {
		// The excludes file goes in before mmdebstrap starts, so dpkg reads
		// it from the first package it installs. (--dpkgopt would also pipe
		// the extraction of the essential packages through mmtarfilter, which
		// takes longer than the rest of the extraction; prune removes what
		// that extraction left instead.)
		if err := writeExcludes(root, filters); err != nil {
			return err
		}
		args = append(args, "--skip=check/empty")
	}
	if env.Verbose {
		args = append(args, "--verbose")
	}
	if len(def.Packages) > 0 {
		args = append(args, "--include="+strings.Join(def.Packages, ","))
	}
	for _, d := range env.Dummies {
		args = append(args, "--include="+d)
	}
	if len(env.Dummies) > 0 {
		args = append(args, "--hook-dir="+hookDir+"/file-mirror-automount")
	}
	if slices.Contains(def.Packages, "usr-is-merged") {
		// The set asks for a merged /usr: lay it out before the essential
		// packages as debootstrap does, or apt satisfies init-system-helpers'
		// "usrmerge | usr-is-merged" with usrmerge, and with it all of perl.
		// The hook's setup part installs a stand-in usr-is-merged; its
		// essential part, a separate apt-get run, would replace it with the
		// real package, which the set's own installation does anyway.
		args = append(args, "--setup-hook="+hookDir+"/merged-usr/setup00.sh")
	}
	if _, err := exec.LookPath("eatmydata"); err == nil && !rootfs.OnTmpfs(root) && def.Variant != "extract" && def.Variant != "custom" {
		// Skipping fsync inside the root is safe: vzpkg packs and syncs the
		// result itself. On a tmpfs fsync costs nothing, and the hook would.
		// The extract and custom variants install no dpkg for the hook to
		// wrap: mmdebstrap fails there with it.
		args = append(args, "--hook-dir="+hookDir+"/eatmydata")
	}
	// The gzip indexes: apt decompresses them several times faster than the
	// xz ones it prefers, and pkg-cacher serves either size as fast.
	args = append(args, `--aptopt=Acquire::CompressionTypes::Order:: "gz"`)
	if def.WeakDeps {
		// mmdebstrap leaves Recommends out unless told.
		args = append(args, `--aptopt=APT::Install-Recommends "true"`)
	}
	for _, k := range def.Keys {
		args = append(args, "--keyring="+k)
	}
	if env.Cacher != nil {
		args = append(args, fmt.Sprintf("--aptopt=Acquire::http::Proxy %q", env.Cacher.String()))
	}
	for _, phase := range []tmpl.Phase{tmpl.PhaseSetup, tmpl.PhaseExtract, tmpl.PhaseEssential, tmpl.PhaseCustomize} {
		for _, h := range def.Hooks[phase] {
			args = append(args, fmt.Sprintf("--%s-hook=%s", phase, h))
		}
	}
	args = append(args, def.Suite, root)
	args = append(args, sourcesLines(def, nil)...)
	if err := run(ctx, env, "mmdebstrap", args...); err != nil {
		return err
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := removeIfExists(r, mmdebstrapConf); err != nil {
		return err
	}
	return prune(root, filters)
}

// debootstrap bootstraps the variant's base system (minbase, or debootstrap's
// default for other variants) with debootstrap, then installs the set and the
// dummy packages as Update does. Setup hooks run before debootstrap, extract
// and essential hooks after it, customize hooks at the end. The path filters
// are in place before debootstrap; Update removes what its extraction left.
func (a Apt) debootstrap(ctx context.Context, root string, def *tmpl.Definition, env packager.Env, filters []pathFilter) error {
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return fmt.Errorf("neither mmdebstrap nor debootstrap is installed: install one (apt-get install mmdebstrap)")
	}
	if len(def.Repos) == 0 || len(def.Repos[0].Mirrors) == 0 {
		return fmt.Errorf("%s has no repository to bootstrap from", def.Name)
	}
	hooks := func(phases ...tmpl.Phase) error {
		for _, ph := range phases {
			for _, h := range def.Hooks[ph] {
				if err := run(ctx, env, h, root); err != nil {
					return fmt.Errorf("%s hook: %w", ph, err)
				}
			}
		}
		return nil
	}
	if err := writeExcludes(root, filters); err != nil {
		return err
	}
	if err := hooks(tmpl.PhaseSetup); err != nil {
		return err
	}
	args := []string{"--arch=" + def.ArchName, "--components=" + strings.Join(def.Repos[0].Components, ",")}
	if def.Variant == "minbase" {
		args = append(args, "--variant=minbase")
	}
	if len(def.Keys) > 0 {
		args = append(args, "--keyring="+def.Keys[0])
	}
	if env.Verbose {
		args = append(args, "--verbose")
	}
	args = append(args, def.Suite, root, def.Repos[0].Mirrors[0])
	if env.Cacher != nil {
		// debootstrap downloads with wget, which takes the proxy from the environment.
		if err := runEnv(ctx, env, []string{"http_proxy=" + env.Cacher.String()}, "debootstrap", args...); err != nil {
			return err
		}
	} else if err := run(ctx, env, "debootstrap", args...); err != nil {
		return err
	}
	if err := hooks(tmpl.PhaseExtract, tmpl.PhaseEssential); err != nil {
		return err
	}
	sources := strings.Join(sourcesLines(def, nil), "\n") + "\n"
	if err := writeInRoot(root, "etc/apt/sources.list", sources); err != nil {
		return err
	}
	if err := a.Update(ctx, root, def, env); err != nil {
		return err
	}
	return hooks(tmpl.PhaseCustomize)
}

// Update runs apt-get in a chroot of root (with /proc and /dev mounted) from
// the definition's mirrors through env.Cacher, whatever the root's own
// sources say. The root's excludes file follows the definition's path
// filters first, and what they leave out goes at the end. Meanwhile a
// policy-rc.d keeps the packages' scripts from starting services in the
// chroot (as mmdebstrap's does during a bootstrap).
func (a Apt) Update(ctx context.Context, root string, def *tmpl.Definition, env packager.Env) error {
	return a.chrootRun(ctx, root, def, env, func(apt []string, install []string) error {
		for _, step := range [][]string{{"update"}, {"dist-upgrade"}, append([]string{"install"}, install...)} {
			if err := runCmd(ctx, env, rootfs.Command(ctx, root, aptEnv, append(apt, step...)...)); err != nil {
				return err
			}
		}
		return nil
	})
}

// chrootRun prepares root for apt-get runs as Update describes and calls
// steps with apt-get's command line (up to its operation) and what it must
// install for the definition's set (packages and dummy package files), then
// undoes the preparation.
func (Apt) chrootRun(ctx context.Context, root string, def *tmpl.Definition, env packager.Env, steps func(apt, install []string) error) (err error) {
	defer func() { err = rootfs.Explain(root, err) }()
	filters, err := pathFilters(def)
	if err != nil {
		return err
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := writeExcludes(root, filters); err != nil {
		return err
	}
	m, err := rootfs.MountAPI(root)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, m.Unmount()) }()

	restorePolicy, err := borrow(r, "usr/sbin/policy-rc.d", []byte(policyRCD), 0o755)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, restorePolicy()) }()
	if env.Cacher == nil {
		// Straight to the mirrors: the root needs the host's name servers meanwhile.
		restore, err := borrowFile(r, "/etc/resolv.conf")
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, restore()) }()
	}
	// Everything Update puts in the root goes in through r, and comes out
	// the same way: a link in the root cannot send it elsewhere.
	const list = "/var/lib/vzpkg-update.list"
	if err := rootfs.WriteFile(r, list[1:], []byte(strings.Join(sourcesLines(def, nil), "\n")+"\n"), 0o644); err != nil {
		return err
	}
	defer removeIfExists(r, list[1:])
	for _, d := range env.Dummies {
		name := "tmp/" + filepath.Base(d)
		if err := rootfs.CopyFile(r, d, name); err != nil {
			return err
		}
		defer removeIfExists(r, name)
	}
	apt := []string{"apt-get", "-y", "-q",
		"-o", "Dir::Etc::SourceList=" + list, "-o", "Dir::Etc::SourceParts=/nonexistent",
		"-o", "APT::Install-Recommends=" + strconv.FormatBool(def.WeakDeps), "-o", "Dpkg::Options::=--force-confold",
		"-o", "Acquire::CompressionTypes::Order::=gz"}
	if env.Cacher != nil {
		apt = append(apt, "-o", "Acquire::http::Proxy="+env.Cacher.String())
	}
	for _, k := range def.Keys {
		name := "etc/apt/trusted.gpg.d/vzpkg-update-" + filepath.Base(k)
		if err := rootfs.CopyFile(r, k, name); err != nil {
			return err
		}
		defer removeIfExists(r, name)
	}
	install := slices.Clone(def.Packages)
	for _, d := range env.Dummies {
		install = append(install, "/tmp/"+filepath.Base(d))
	}
	if err := steps(apt, install); err != nil {
		return err
	}
	return prune(root, filters) // it stays off /proc and /dev, other file systems
}

// aptEnv is what apt-get needs in a chroot beyond rootfs.Command's environment.
var aptEnv = []string{"DEBIAN_FRONTEND=noninteractive"}

// Query lists root's installed packages from its dpkg database, read
// inside the root (a var/lib/dpkg leading out of it is refused, never read):
// the status file, then the journal in updates/ that dpkg would apply first,
// as dpkg-query reads them.
func (Apt) Query(ctx context.Context, root string) (_ []packager.Package, err error) {
	defer func() { err = rootfs.Explain(root, err) }()
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	const admin = "var/lib/dpkg"
	installed := map[string]packager.Package{} // by name and architecture
	files := []string{admin + "/status"}
	journal, err := fs.ReadDir(r.FS(), admin+"/updates")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list packages of %s: %w", root, err)
	}
	for _, e := range journal { // sorted by name; dpkg names them 0000, 0001 ...
		if strings.Trim(e.Name(), "0123456789") == "" && e.Type().IsRegular() {
			files = append(files, admin+"/updates/"+e.Name())
		}
	}
	for _, f := range files {
		data, err := r.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("list packages of %s: %w", root, err)
		}
		for _, para := range strings.Split(string(data), "\n\n") {
			fields := map[string]string{}
			for _, line := range strings.Split(para, "\n") {
				if k, v, ok := strings.Cut(line, ":"); ok && line[0] != ' ' && line[0] != '\t' {
					fields[k] = strings.TrimSpace(v)
				}
			}
			if fields["Package"] == "" {
				continue
			}
			p := packager.Package{Name: fields["Package"], Version: fields["Version"], Arch: fields["Architecture"]}
			key := p.Name + "\x00" + p.Arch
			// "ii" in dpkg -l: wanted installed, and installed.
			if st := strings.Fields(fields["Status"]); len(st) == 3 && st[0] == "install" && st[2] == "installed" {
				installed[key] = p
			} else {
				delete(installed, key)
			}
		}
	}
	pkgs := slices.Collect(maps.Values(installed))
	slices.SortFunc(pkgs, func(a, b packager.Package) int {
		return strings.Compare(a.Name+"\x00"+a.Arch, b.Name+"\x00"+b.Arch)
	})
	return pkgs, nil
}

// ConfigureRepos renames the root's sources (sources.list, sources.list.d/*)
// to *.disabled and writes a sources.list with the same repositories through
// cacher. With cacher nil, the root keeps the mirrors mmdebstrap wrote.
func (Apt) ConfigureRepos(root string, def *tmpl.Definition, cacher *url.URL) (err error) {
	defer func() { err = rootfs.Explain(root, err) }()
	if cacher == nil {
		return nil
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	const main = "etc/apt/sources.list"
	files, err := fs.Glob(r.FS(), "etc/apt/sources.list.d/*")
	if err != nil {
		return err
	}
	if data, err := r.ReadFile(main); err == nil && !strings.HasPrefix(string(data), sourcesHeader) {
		files = append(files, main)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, f := range files {
		if strings.HasSuffix(f, ".disabled") {
			continue
		}
		if err := r.Rename(f, f+".disabled"); err != nil {
			return err
		}
	}
	content := sourcesHeader + strings.Join(sourcesLines(def, cacher), "\n") + "\n"
	return rootfs.WriteFile(r, main, []byte(content), 0o644)
}

// Dummy builds a dummy .deb.
func (Apt) Dummy(ctx context.Context, dir string, d tmpl.Dummy) (string, error) {
	return dummy.Deb(ctx, dir, d)
}

// sourcesLines renders the definition's repositories as one-line sources
// entries, each through cacher when it is not nil. apt uses the first mirror
// of each repository; the others are for pkg-cacher's path_map.
func sourcesLines(def *tmpl.Definition, cacher *url.URL) []string {
	var lines []string
	for _, r := range def.Repos {
		if len(r.Mirrors) == 0 {
			continue
		}
		mirror := r.Mirrors[0]
		if cacher != nil {
			mirror = packager.ThroughCacher(cacher, mirror)
		}
		for _, s := range r.Suites {
			lines = append(lines, strings.Join(append([]string{"deb", mirror, s}, r.Components...), " "))
		}
	}
	return lines
}

// cancelGrace is how long a cancelled command has to clean up.
const cancelGrace = 10 * time.Second

// run runs a command, its output going to env.Output line by line. On
// cancellation the command's whole process group (mmdebstrap, its workers
// and the hook it runs) gets SIGTERM and cancelGrace to clean up
// (mmdebstrap unmounts what it mounted) before the command is killed; what
// is left of the group when the command is done is killed too.
func run(ctx context.Context, env packager.Env, name string, args ...string) error {
	return runEnv(ctx, env, nil, name, args...)
}

// runEnv is run with extra environment variables. It is for the host's
// programs (mmdebstrap, debootstrap, hooks), which get the host's
// environment; a command in a chroot gets rootfs.Command's.
func runEnv(ctx context.Context, env packager.Env, vars []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C.UTF-8"), vars...)
	return runCmd(ctx, env, cmd)
}

// runCmd runs cmd, made with exec.CommandContext(ctx, ...), as run does.
func runCmd(ctx context.Context, env packager.Env, cmd *exec.Cmd) error {
	name := cmd.Args[0]
	if name == "chroot" && len(cmd.Args) > 2 {
		name = cmd.Args[2] // rootfs.Command's: the program run in the root
	}
	return packager.Run(ctx, env, cmd, name, nil, cancelGrace)
}

// policyRCD is the policy-rc.d that forbids invoke-rc.d to start anything.
const policyRCD = "#!/bin/sh\n# Written by vzpkg for an update: no service starts in the chroot.\nexit 101\n"

// borrowFile puts the host's file name into r (replacing a file or
// symlink there) and returns the function that puts r's own back.
func borrowFile(r *os.Root, name string) (restore func() error, err error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return borrow(r, strings.TrimPrefix(name, "/"), data, 0o644)
}

// borrow puts a file holding data at dst in r (replacing a file or symlink
// there) and returns the function that puts r's own back.
func borrow(r *os.Root, dst string, data []byte, perm fs.FileMode) (restore func() error, err error) {
	saved := dst + ".vzpkg-saved"
	had := false
	if _, err := r.Lstat(dst); err == nil {
		if err := r.Rename(dst, saved); err != nil {
			return nil, err
		}
		had = true
	}
	restore = func() error {
		if err := removeIfExists(r, dst); err != nil || !had {
			return err
		}
		return r.Rename(saved, dst)
	}
	if err := rootfs.WriteFile(r, dst, data, perm); err != nil {
		return nil, errors.Join(err, restore())
	}
	return restore, nil
}

// removeIfExists removes name from r; that it is not there is no error.
func removeIfExists(r *os.Root, name string) error {
	if err := r.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// writeInRoot writes content to name in root, as rootfs.WriteFile does.
func writeInRoot(root, name, content string) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	return rootfs.WriteFile(r, name, []byte(content), 0o644)
}
