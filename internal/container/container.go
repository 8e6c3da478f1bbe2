// Package container is how vzpkg reaches an installed container to manage
// its packages: a root directory (the chroot driver), an LXC container
// (lxc-attach while it runs, its rootfs as a chroot while it is stopped) or
// an OpenVZ container (vzctl exec2 while it runs, its private area as a
// chroot while it is stopped).
//
// A container's root is hostile: its root user controls it. What vzpkg
// itself reads in it (the packager record, the repository configuration)
// goes through an os.Root; a stopped container's package manager runs in a
// chroot of it with /proc, /sys and /dev mounted through rootfs.Mounts and
// unmounted after the operation, whatever its outcome; a running one's runs
// inside it, with a clean environment. Note that a chroot is no confinement
// for a program run as the host's root: running the container's own
// package manager and its packages' scripts in a chroot trusts them as much
// as the host.
package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"

	"vzpkg2/internal/packager"
	"vzpkg2/internal/rootfs"
)

// The drivers.
const (
	Chroot = "chroot" // a root directory
	LXC    = "lxc"    // an LXC container: lxc-info, lxc-attach, lxc-ls
	Vzctl  = "vzctl"  // an OpenVZ container: vzlist, vzctl
)

// Ref names a container for a driver.
type Ref struct {
	Driver string
	Name   string // a root directory, an LXC name, an OpenVZ CTID
}

func (r Ref) String() string {
	switch r.Driver {
	case LXC:
		return "lxc:" + r.Name
	case Vzctl:
		return r.Name
	}
	return r.Name
}

var ctid = regexp.MustCompile(`^[0-9]+$`)

// Parse reads a container argument: a number is an OpenVZ CTID, lxc:NAME
// an LXC container, a path starting with / or . a root directory. driver,
// when not empty, overrides the guess.
func Parse(ct, driver string) (Ref, error) {
	if ct == "" {
		return Ref{}, errors.New("empty container name")
	}
	name := ct
	if rest, ok := strings.CutPrefix(ct, "lxc:"); ok {
		name = rest
		if driver == "" {
			driver = LXC
		}
	}
	if driver == "" {
		switch {
		case ctid.MatchString(ct):
			driver = Vzctl
		case strings.HasPrefix(ct, "/") || strings.HasPrefix(ct, "."):
			driver = Chroot
		default:
			return Ref{}, fmt.Errorf("container %q: give an OpenVZ CTID (a number), lxc:NAME or a root directory (starting with / or .), or --driver", ct)
		}
	}
	switch driver {
	case Chroot:
		abs, err := filepath.Abs(name)
		if err != nil {
			return Ref{}, err
		}
		name = abs
	case LXC:
		if strings.ContainsAny(name, "/\x00") || strings.HasPrefix(name, "-") {
			return Ref{}, fmt.Errorf("LXC container name %q", name)
		}
	case Vzctl:
		if !ctid.MatchString(name) {
			return Ref{}, fmt.Errorf("OpenVZ container %q: want a numeric CTID", name)
		}
	default:
		return Ref{}, fmt.Errorf("driver %q: want chroot, lxc or vzctl", driver)
	}
	return Ref{Driver: driver, Name: name}, nil
}

// Container is a container reached: through its root on the host when it
// is stopped (or a plain directory), through a command run inside it when
// it runs.
type Container struct {
	Ref
	Root    string   // its root directory on the host, when it is used as a chroot
	Running bool     // it runs: commands go through Exec
	exec    []string // the command line prefix that runs a command inside it
	quote   bool     // exec takes the command as one shell string (vzctl exec2)
}

// Open finds the container ref names and how to reach it.
func Open(ctx context.Context, ref Ref) (*Container, error) {
	c := &Container{Ref: ref}
	switch ref.Driver {
	case Chroot:
		fi, err := os.Stat(ref.Name)
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", ref, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("container %s is not a directory", ref)
		}
		c.Root = ref.Name
	case LXC:
		state, err := output(ctx, "lxc-info", "-n", ref.Name, "-s", "-H")
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", ref, err)
		}
		if strings.TrimSpace(state) == "RUNNING" {
			c.Running = true
			c.exec = []string{"lxc-attach", "-n", ref.Name, "--clear-env", "--"}
			break
		}
		cfg, err := output(ctx, "lxc-info", "-n", ref.Name, "-c", "lxc.rootfs.path")
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", ref, err)
		}
		_, p, _ := strings.Cut(strings.TrimSpace(cfg), "=")
		p = strings.TrimSpace(p)
		if rest, ok := strings.CutPrefix(p, "dir:"); ok {
			p = rest
		}
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("container %s is stopped and its rootfs %q is not a directory vzpkg can use: start it", ref, p)
		}
		c.Root = p
	case Vzctl:
		cts, err := vzlist(ctx, ref.Name)
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", ref, err)
		}
		if len(cts) != 1 {
			return nil, fmt.Errorf("container %s: vzlist does not list it", ref)
		}
		if cts[0].running {
			c.Running = true
			c.exec = []string{"vzctl", "exec2", ref.Name}
			c.quote = true
			break
		}
		if _, err := os.Stat(filepath.Join(cts[0].private, "root.hdd")); err == nil {
			return nil, fmt.Errorf("container %s is stopped and its private area %s is a ploop image: mount it (vzctl mount %s) or start it", ref, cts[0].private, ref.Name)
		}
		c.Root = cts[0].private
	}
	return c, nil
}

// List returns every container the driver knows of: for lxc what lxc-ls
// lists, for vzctl what vzlist -a lists, for chroot each directory in dir.
func List(ctx context.Context, driver, dir string) ([]Ref, error) {
	var refs []Ref
	switch driver {
	case Chroot:
		if dir == "" {
			return nil, errors.New("the chroot driver lists the directories of --root-dir: give it")
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				abs, err := filepath.Abs(filepath.Join(dir, e.Name()))
				if err != nil {
					return nil, err
				}
				refs = append(refs, Ref{Driver: Chroot, Name: abs})
			}
		}
	case LXC:
		out, err := output(ctx, "lxc-ls", "-1")
		if err != nil {
			return nil, err
		}
		for _, n := range strings.Fields(out) {
			refs = append(refs, Ref{Driver: LXC, Name: n})
		}
	case Vzctl:
		cts, err := vzlist(ctx, "")
		if err != nil {
			return nil, err
		}
		for _, c := range cts {
			refs = append(refs, Ref{Driver: Vzctl, Name: c.id})
		}
	default:
		return nil, fmt.Errorf("driver %q: want chroot, lxc or vzctl", driver)
	}
	return refs, nil
}

type vzct struct {
	id, private string
	running     bool
}

// vzlist lists the container id, or every one when id is empty.
func vzlist(ctx context.Context, id string) ([]vzct, error) {
	args := []string{"-H", "-o", "ctid,status,private"}
	if id == "" {
		args = append([]string{"-a"}, args...)
	} else {
		args = append(args, id)
	}
	out, err := output(ctx, "vzlist", args...)
	if err != nil {
		return nil, err
	}
	var cts []vzct
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			continue
		}
		cts = append(cts, vzct{id: f[0], running: f[1] == "running", private: f[2]})
	}
	return cts, nil
}

// output runs a host tool and returns its standard output; a failure
// carries its error output.
func output(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(string(out))
		}
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return string(out), nil
}

// Ops are the package verbs on one container.
type Ops interface {
	Install(ctx context.Context, pkgs []string) error
	Remove(ctx context.Context, pkgs []string) error
	Update(ctx context.Context, pkgs []string) (changed bool, err error)
	Query(ctx context.Context) ([]packager.Package, error)
	CheckUpdates(ctx context.Context) ([]packager.Package, error)
	// Packager names the container's packager.
	Packager() string
	// Close removes what Ops keeps on the host.
	Close() error
}

// Backends finds the backend of a packager name, as packager.Registry
// does.
type Backends interface {
	Lookup(name string) (packager.Packager, error)
}

// Ops returns the package verbs of c, its package manager's output going
// to out: for a running container its own package manager run inside it,
// otherwise the backend reg has for its recorded (or detected) packager on
// its root.
func (c *Container) Ops(ctx context.Context, reg Backends, out io.Writer) (Ops, error) {
	if c.Running {
		return c.execOps(ctx, out)
	}
	r, err := os.OpenRoot(c.Root)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.Ref, err)
	}
	defer r.Close()
	rec, err := readRecord(r)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.Ref, rootfs.Explain(c.Root, err))
	}
	p, err := reg.Lookup(rec.Packager)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.Ref, err)
	}
	keys, err := os.MkdirTemp("", "vzpkg-ct-keys-")
	if err != nil {
		return nil, err
	}
	o := &rootOps{p: p, name: rec.Packager, root: c.Root, env: packager.Env{Output: out}, keys: keys}
	// Listing needs no repositories: a container without usable ones
	// fails only the verbs that fetch.
	if o.spec, o.specErr = specFor(ctx, r, rec, p, keys); o.specErr != nil {
		o.specErr = rootfs.Explain(c.Root, o.specErr)
	} else if o.spec.Name == "" {
		o.spec.Name = c.Ref.String()
	}
	return o, nil
}

// rootOps runs a packager backend on a stopped container's root, /sys
// mounted read-only in it meanwhile (the backends mount /proc and /dev and,
// for apt, put the host's resolv.conf and a policy-rc.d that starts no
// service in place; dnf starts no service itself, and a scriptlet's
// systemctl finds no systemd to talk to in a chroot).
type rootOps struct {
	p       packager.Packager
	name    string
	root    string
	spec    *packager.Spec
	specErr error // why spec could not be made
	env     packager.Env
	keys    string // host directory of the keys copied out of the root
}

func (o *rootOps) Packager() string { return o.name }
func (o *rootOps) Close() error     { return os.RemoveAll(o.keys) }

// withSys mounts sysfs read-only on the root's /sys around fn.
func (o *rootOps) withSys(fn func() error) (err error) {
	if o.specErr != nil {
		return o.specErr
	}
	var m rootfs.Mounts
	const flags = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if err := m.Mount(o.root, "sys", "sysfs", "sysfs", flags); err != nil {
		return rootfs.Explain(o.root, err)
	}
	defer func() { err = errors.Join(err, m.Unmount()) }()
	return fn()
}

func (o *rootOps) Install(ctx context.Context, pkgs []string) error {
	return o.withSys(func() error { return o.p.Install(ctx, o.root, o.spec, o.env, pkgs) })
}

func (o *rootOps) Remove(ctx context.Context, pkgs []string) error {
	return o.withSys(func() error { return o.p.Remove(ctx, o.root, o.spec, o.env, pkgs) })
}

func (o *rootOps) Update(ctx context.Context, pkgs []string) (changed bool, err error) {
	err = o.withSys(func() error {
		changed, err = o.p.Update(ctx, o.root, o.spec, o.env, pkgs)
		return err
	})
	return changed, err
}

func (o *rootOps) Query(ctx context.Context) ([]packager.Package, error) {
	return o.p.Query(ctx, o.root)
}

func (o *rootOps) CheckUpdates(ctx context.Context) (ups []packager.Package, err error) {
	err = o.withSys(func() error {
		ups, err = o.p.CheckUpdates(ctx, o.root, o.spec, o.env)
		return err
	})
	return ups, err
}
