package vzpkgcli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"vzpkg2/internal/container"
	"vzpkg2/internal/packager"
	"vzpkg2/internal/templatebuild"
	"vzpkg2/internal/tmpl"
)

// Exit statuses of the container commands.
const (
	ExitFailure = 1   // the operation failed: no such container or package, the packager failed
	ExitUsage   = 2   // the command line is wrong
	ExitUpdates = 100 // check-updates: updates are available (as dnf check-update says it)
)

// ExitError is an error that ends vzpkg with Code. An empty message prints
// nothing.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return ""
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

const exitStatusDoc = `
Exit status: 0 on success; 1 when the operation failed (no such container, no such package,
the package manager failed, the package database is locked), with one line on the error
output naming what failed and the package manager's own message; 2 for a wrong command line.`

const ctDoc = `
CT is an OpenVZ container ID (a number: vzctl exec2 while it runs, its private area as a
chroot while it is stopped), an LXC container lxc:NAME (lxc-attach while it runs, its
lxc.rootfs.path as a chroot while it is stopped) or a root directory, a path starting with /
or . (the chroot driver); --driver chroot|lxc|vzctl overrides the guess. In a chroot, /proc,
/sys (read-only) and /dev are mounted for the operation and unmounted after it, also when it
fails or is interrupted; apt runs with a policy-rc.d that starts no service.

The packager is the one the template recorded in /etc/vzpkg/packager when vzpkg built it, else
the one whose database the container has (dpkg: apt, rpm: dnf). The repositories are the
container's own (sources.list, yum.repos.d): through pkg-cacher when the template was built
with use_cacher. A script:NAME packager (vzpkg-packager(7)) runs its NAME-* executables from
the template trees' _packagers or /usr/lib/vzpkg/packagers on a stopped container's root, with
the repositories its NAME-repos reads there.`

// ctFlags are the flags of the container commands.
type ctFlags struct {
	driver  string
	verbose bool
	json    bool
}

func (f *ctFlags) register(cmd *cobra.Command, withJSON bool) {
	cmd.Flags().StringVar(&f.driver, "driver", "", "how CT is reached: chroot, lxc or vzctl (default: guessed from CT)")
	cmd.Flags().BoolVarP(&f.verbose, "verbose", "v", false, "print the package manager's output")
	if withJSON {
		cmd.Flags().BoolVar(&f.json, "json", false, "print JSON")
	}
}

// withContainer opens CT and runs fn with its package verbs.
func (a *app) withContainer(cmd *cobra.Command, ct string, f *ctFlags, out io.Writer, fn func(ctx context.Context, ops container.Ops) error) error {
	ctx := cmd.Context()
	ref, err := container.Parse(ct, f.driver)
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	return withRef(ctx, a.ctBackends(), ref, f, out, fn)
}

// withRef opens ref and runs fn with its package verbs, the backends of
// its packager found in reg.
func withRef(ctx context.Context, reg container.Backends, ref container.Ref, f *ctFlags, out io.Writer, fn func(ctx context.Context, ops container.Ops) error) error {
	c, err := container.Open(ctx, ref)
	if err != nil {
		return &ExitError{Code: ExitFailure, Err: err}
	}
	ops, err := c.Ops(ctx, reg, out)
	if err != nil {
		return &ExitError{Code: ExitFailure, Err: err}
	}
	defer ops.Close()
	if err := fn(ctx, ops); err != nil {
		var ee *ExitError
		if errors.As(err, &ee) {
			return err
		}
		return &ExitError{Code: ExitFailure, Err: fmt.Errorf("%s: %s", ref, oneLine(err))}
	}
	return nil
}

// ctBackends finds the backend of a container's packager. A script
// packager's executables are looked for in the _packagers directories of
// the template trees, as when its template was built, then in
// script.SystemDir; the trees are looked for once, and only when a
// container has a script packager.
type ctBackends struct {
	scriptDirs func() ([]string, error)
}

// ctBackends returns the backends of the container commands, safe for
// concurrent use.
func (a *app) ctBackends() ctBackends {
	return ctBackends{scriptDirs: sync.OnceValues(func() ([]string, error) {
		cfg, err := a.loadConfig()
		if err != nil {
			return nil, err
		}
		roots, err := a.roots(cfg)
		if err != nil {
			return nil, err
		}
		var dirs []string
		for _, r := range roots {
			dirs = append(dirs, filepath.Join(r, tmpl.ScriptDir))
		}
		return dirs, nil
	})}
}

func (b ctBackends) Lookup(name string) (packager.Packager, error) {
	var dirs []string
	if strings.HasPrefix(name, tmpl.PackagerScript+":") {
		var err error
		if dirs, err = b.scriptDirs(); err != nil {
			return nil, err
		}
	}
	return templatebuild.Packagers(dirs...).Lookup(name)
}

// oneLine shortens a package manager's failure to one line: what failed,
// and the lines of its output that say why (apt's "E:", dnf's "Error:" and
// "No match for argument").
func oneLine(err error) string {
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	var why []string
	for _, l := range lines[1:] {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "E: ") || strings.HasPrefix(t, "Error:") || strings.HasPrefix(t, "No match for argument") ||
			strings.HasPrefix(t, "error:") || strings.Contains(t, "Could not get lock") {
			why = append(why, t)
		}
	}
	if len(why) == 0 && len(lines) > 1 {
		why = lines[len(lines)-1:]
	}
	return strings.Join(append(lines[:1], why...), ": ")
}

// pmOutput is where the package manager's output goes.
func pmOutput(cmd *cobra.Command, f *ctFlags) io.Writer {
	if f.verbose {
		return cmd.ErrOrStderr()
	}
	return nil
}

func (a *app) newInstall() *cobra.Command {
	var f ctFlags
	cmd := &cobra.Command{
		Use:   "install CT PKG...",
		Short: "install packages in a container",
		Long: `Install packages PKG in container CT with its package manager (apt-get install,
dnf install), with what they depend on. An unknown package fails the whole request and
leaves the container's packages as they were.
` + ctDoc + exitStatusDoc,
		Example: `  vzpkg install 101 htop
  vzpkg install lxc:web1 nginx-light
  vzpkg install /srv/roots/ct1 hello`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withContainer(cmd, args[0], &f, pmOutput(cmd, &f), func(ctx context.Context, ops container.Ops) error {
				if err := ops.Install(ctx, args[1:]); err != nil {
					return fmt.Errorf("install %s: %w", strings.Join(args[1:], " "), err)
				}
				pkgs, err := ops.Query(ctx)
				if err != nil {
					return err
				}
				for _, p := range pkgs {
					if slices.Contains(args[1:], p.Name) {
						fmt.Fprintf(cmd.OutOrStdout(), "installed %s %s %s\n", p.Name, p.Version, p.Arch)
					}
				}
				return nil
			})
		},
	}
	f.register(cmd, false)
	return cmd
}

// containerRemove is `vzpkg remove CT PKG...`, run by the remove command.
func (a *app) containerRemove(cmd *cobra.Command, args []string, f *ctFlags) error {
	if len(args) < 2 {
		return &ExitError{Code: ExitUsage, Err: errors.New("usage: vzpkg remove CT PKG... (or vzpkg remove cache NAME)")}
	}
	return a.withContainer(cmd, args[0], f, pmOutput(cmd, f), func(ctx context.Context, ops container.Ops) error {
		if err := ops.Remove(ctx, args[1:]); err != nil {
			return fmt.Errorf("remove %s: %w", strings.Join(args[1:], " "), err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", strings.Join(args[1:], " "))
		return nil
	})
}

// allFlags are the flags of the host-wide commands.
type allFlags struct {
	all     bool
	jobs    int
	rootDir string
}

func (f *allFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.all, "all", false, "every container of the driver: what vzlist -a or lxc-ls lists, or each directory of --root-dir")
	cmd.Flags().IntVarP(&f.jobs, "jobs", "j", 1, "with --all, how many containers at a time")
	cmd.Flags().StringVar(&f.rootDir, "root-dir", "", "with --all and the chroot driver, the directory whose subdirectories are the containers")
}

// containerUpdate is `vzpkg update CT [PKG...]` and `vzpkg update --all`.
func (a *app) containerUpdate(cmd *cobra.Command, args []string, f *ctFlags, af *allFlags) error {
	if af.all {
		if len(args) > 0 {
			return &ExitError{Code: ExitUsage, Err: errors.New("--all updates every package of every container: name no container or package")}
		}
		return a.forAll(cmd, f, af, "update", func(ctx context.Context, ops container.Ops) (string, bool, error) {
			before, err := ops.Query(ctx)
			if err != nil {
				return "", false, err
			}
			changed, err := ops.Update(ctx, nil)
			if err != nil {
				return "", false, err
			}
			if !changed {
				return "up to date", false, nil
			}
			after, err := ops.Query(ctx)
			if err != nil {
				return "", false, err
			}
			return fmt.Sprintf("%d packages changed", len(packager.Diff(before, after))), false, nil
		})
	}
	if len(args) < 1 {
		return &ExitError{Code: ExitUsage, Err: errors.New("usage: vzpkg update CT [PKG...] | --all (or vzpkg update cache NAME)")}
	}
	return a.withContainer(cmd, args[0], f, pmOutput(cmd, f), func(ctx context.Context, ops container.Ops) error {
		before, err := ops.Query(ctx)
		if err != nil {
			return err
		}
		if _, err := ops.Update(ctx, args[1:]); err != nil {
			return fmt.Errorf("update: %w", err)
		}
		after, err := ops.Query(ctx)
		if err != nil {
			return err
		}
		diff := packager.Diff(before, after)
		for _, d := range diff {
			fmt.Fprintln(cmd.OutOrStdout(), d)
		}
		if len(diff) == 0 {
			fmt.Fprintf(cmd.OutOrStdout(), "%s is up to date\n", args[0])
		}
		return nil
	})
}

// forAll runs one per container the driver lists, af.jobs at a time, a
// line of progress for each as it ends, then a summary table. It fails
// when any container failed; with updates when one reports any (and none
// failed).
func (a *app) forAll(cmd *cobra.Command, f *ctFlags, af *allFlags, verb string, one func(ctx context.Context, ops container.Ops) (detail string, updates bool, err error)) error {
	ctx := cmd.Context()
	driver := f.driver
	if driver == "" {
		switch {
		case af.rootDir != "":
			driver = container.Chroot
		case hasTool("vzlist"):
			driver = container.Vzctl
		case hasTool("lxc-ls"):
			driver = container.LXC
		default:
			return &ExitError{Code: ExitUsage, Err: errors.New("--all: no vzlist or lxc-ls here; give --driver, or --root-dir for directories")}
		}
	}
	refs, err := container.List(ctx, driver, af.rootDir)
	if err != nil {
		return &ExitError{Code: ExitFailure, Err: fmt.Errorf("list containers: %w", err)}
	}
	if len(refs) == 0 {
		fmt.Fprintln(cmd.OutOrStdout(), "no containers")
		return nil
	}
	jobs := max(af.jobs, 1)
	reg := a.ctBackends()
	type result struct {
		status, detail string
		updates        bool
	}
	results := make([]result, len(refs))
	var (
		mu   sync.Mutex // serializes the progress lines and done
		done int
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, jobs)
	for i, ref := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			var res result
			err := withRef(ctx, reg, ref, f, nil, func(ctx context.Context, ops container.Ops) error {
				d, u, err := one(ctx, ops)
				res.detail, res.updates = d, u
				return err
			})
			res.status = "ok"
			if err != nil {
				res.status, res.detail = "FAILED", strings.TrimPrefix(err.Error(), ref.String()+": ")
			}
			results[i] = res
			mu.Lock()
			done++
			fmt.Fprintf(cmd.ErrOrStderr(), "[%d/%d] %s %s: %s %s\n", done, len(refs), verb, ref, res.status, res.detail)
			mu.Unlock()
		}()
	}
	wg.Wait()
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "CONTAINER\tSTATUS\tDETAIL")
	failed, updates := 0, false
	for i, ref := range refs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", ref, results[i].status, results[i].detail)
		if results[i].status != "ok" {
			failed++
		}
		updates = updates || results[i].updates
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	switch {
	case failed > 0:
		return &ExitError{Code: ExitFailure, Err: fmt.Errorf("%s failed in %d of %d containers", verb, failed, len(refs))}
	case ctx.Err() != nil:
		return &ExitError{Code: ExitFailure, Err: ctx.Err()}
	case updates:
		return &ExitError{Code: ExitUpdates}
	}
	return nil
}

func hasTool(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

// pkgJSON is a package in --json output.
type pkgJSON struct {
	Name       string `json:"name"`
	Version    string `json:"version"`
	Arch       string `json:"arch"`
	NewVersion string `json:"new_version,omitempty"`
}

// containerList is `vzpkg list CT`.
func (a *app) containerList(cmd *cobra.Command, ct string, f *ctFlags) error {
	return a.withContainer(cmd, ct, f, nil, func(ctx context.Context, ops container.Ops) error {
		pkgs, err := ops.Query(ctx)
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if f.json {
			list := make([]pkgJSON, 0, len(pkgs))
			for _, p := range pkgs {
				list = append(list, pkgJSON{Name: p.Name, Version: p.Version, Arch: p.Arch})
			}
			return json.NewEncoder(out).Encode(list)
		}
		tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tVERSION\tARCH")
		for _, p := range pkgs {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Name, p.Version, p.Arch)
		}
		return tw.Flush()
	})
}

func (a *app) newInfo() *cobra.Command {
	var f ctFlags
	cmd := &cobra.Command{
		Use:   "info CT PKG",
		Short: "show an installed package of a container",
		Long: `Print name, version, architecture and packager of package PKG installed in container CT; fail
when it is not installed.
` + ctDoc + exitStatusDoc,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withContainer(cmd, args[0], &f, nil, func(ctx context.Context, ops container.Ops) error {
				pkgs, err := ops.Query(ctx)
				if err != nil {
					return err
				}
				found := false
				for _, p := range pkgs {
					if p.Name == args[1] {
						found = true
						fmt.Fprintf(cmd.OutOrStdout(), "Package: %s\nVersion: %s\nArchitecture: %s\nPackager: %s\n\n", p.Name, p.Version, p.Arch, ops.Packager())
					}
				}
				if !found {
					return fmt.Errorf("%s is not installed", args[1])
				}
				return nil
			})
		},
	}
	f.register(cmd, false)
	return cmd
}

func (a *app) newCheckUpdates() *cobra.Command {
	var (
		f  ctFlags
		af allFlags
	)
	cmd := &cobra.Command{
		Use:   "check-updates CT | --all",
		Short: "list the packages of a container that have updates",
		Long: `Ask container CT's repositories which of its installed packages have newer versions, and list
them (name, installed version, new version, architecture). Nothing in the container changes.
With --all, every container of the driver (see vzpkg update --all), -j at a time.
` + ctDoc + `

Exit status: 0 when there are no updates; 100 when there are (as dnf check-update); 1 when the
check failed (for --all: in any container); 2 for a wrong command line.`,
		Example: `  vzpkg check-updates 101 || echo "updates or failure: $?"
  vzpkg check-updates --all --driver lxc -j 4`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if af.all {
				if len(args) > 0 {
					return &ExitError{Code: ExitUsage, Err: errors.New("--all checks every container: name none")}
				}
				return a.forAll(cmd, &f, &af, "check-updates", func(ctx context.Context, ops container.Ops) (string, bool, error) {
					ups, err := ops.CheckUpdates(ctx)
					if err != nil {
						return "", false, err
					}
					if len(ups) == 0 {
						return "no updates", false, nil
					}
					return fmt.Sprintf("%d updates", len(ups)), true, nil
				})
			}
			if len(args) != 1 {
				return &ExitError{Code: ExitUsage, Err: errors.New("usage: vzpkg check-updates CT | --all")}
			}
			var found bool
			err := a.withContainer(cmd, args[0], &f, pmOutput(cmd, &f), func(ctx context.Context, ops container.Ops) error {
				ups, err := ops.CheckUpdates(ctx)
				if err != nil {
					return fmt.Errorf("check updates: %w", err)
				}
				pkgs, err := ops.Query(ctx)
				if err != nil {
					return err
				}
				found = len(ups) > 0
				return printUpdates(cmd.OutOrStdout(), ups, pkgs, f.json)
			})
			if err == nil && found {
				return &ExitError{Code: ExitUpdates}
			}
			return err
		},
	}
	f.register(cmd, true)
	af.register(cmd)
	return cmd
}

func printUpdates(out io.Writer, ups, installed []packager.Package, asJSON bool) error {
	current := func(u packager.Package) string {
		for _, p := range installed {
			if p.Name == u.Name && (p.Arch == u.Arch || u.Arch == "" || p.Arch == "all" || p.Arch == "noarch") {
				return p.Version
			}
		}
		return ""
	}
	if asJSON {
		list := make([]pkgJSON, 0, len(ups))
		for _, u := range ups {
			list = append(list, pkgJSON{Name: u.Name, Version: current(u), NewVersion: u.Version, Arch: u.Arch})
		}
		return json.NewEncoder(out).Encode(list)
	}
	if len(ups) == 0 {
		_, err := fmt.Fprintln(out, "no updates")
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tINSTALLED\tNEW\tARCH")
	for _, u := range ups {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, current(u), u.Version, u.Arch)
	}
	return tw.Flush()
}
