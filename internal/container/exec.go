package container

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"vzpkg2/internal/packager"
	"vzpkg2/internal/rootfs"
)

// execOps runs a running container's own package manager inside it
// (lxc-attach, vzctl exec2), with rootfs.ChrootEnv as its whole
// environment. The container starts its services as it always does: its
// own init is running.
type execOps struct {
	c    *Container
	name string // "apt" or "dnf"
	out  io.Writer
}

func (c *Container) execOps(ctx context.Context, out io.Writer) (Ops, error) {
	o := &execOps{c: c, out: out}
	// The record, else the package database the container has.
	rec, err := o.output(ctx, "sh", "-c", "cat /"+RecordFile+" 2>/dev/null || { test -f /var/lib/dpkg/status && echo packager=apt; } || { command -v rpm >/dev/null && echo packager=dnf; }")
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.Ref, err)
	}
	r, err := parseRecord(rec)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.Ref, err)
	}
	if strings.HasPrefix(r.Packager, "script:") {
		// A script packager runs on the host, on a root directory.
		return nil, fmt.Errorf("container %s runs, and its packager %s is a script packager, which vzpkg runs on a stopped container's root: stop the container", c.Ref, r.Packager)
	}
	if r.Packager != "apt" && r.Packager != "dnf" {
		return nil, fmt.Errorf("container %s: packager %q: vzpkg manages running containers of apt and dnf", c.Ref, r.Packager)
	}
	o.name = r.Packager
	return o, nil
}

func (o *execOps) Packager() string { return o.name }
func (o *execOps) Close() error     { return nil }

// command returns the host command that runs argv in the container.
func (o *execOps) command(ctx context.Context, argv ...string) *exec.Cmd {
	inner := append(append([]string{"env", "-i"}, rootfs.ChrootEnv...), "DEBIAN_FRONTEND=noninteractive")
	inner = append(inner, argv...)
	args := slices.Clone(o.c.exec)
	if o.c.quote {
		q := make([]string, len(inner))
		for i, a := range inner {
			q[i] = shellQuote(a)
		}
		args = append(args, strings.Join(q, " "))
	} else {
		args = append(args, inner...)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 60 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=/.:,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// run runs argv in the container, its output to o.out; a failure carries
// the output's last lines.
func (o *execOps) run(ctx context.Context, argv ...string) error {
	var tail bytes.Buffer
	cmd := o.command(ctx, argv...)
	w := io.Writer(&tail)
	if o.out != nil {
		w = io.MultiWriter(o.out, &tail)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		lines := strings.Split(strings.TrimSpace(tail.String()), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		return fmt.Errorf("%s failed: %w\n%s", argv[0], err, strings.Join(lines, "\n"))
	}
	return nil
}

// output runs argv in the container and returns its standard output.
func (o *execOps) output(ctx context.Context, argv ...string) (string, error) {
	var out, errOut bytes.Buffer
	cmd := o.command(ctx, argv...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return out.String(), fmt.Errorf("%s failed: %w\n%s", argv[0], err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), nil
}

var aptGet = []string{"apt-get", "-y", "-q", "-o", "Dpkg::Options::=--force-confold"}

func (o *execOps) Install(ctx context.Context, pkgs []string) error {
	if o.name == "dnf" {
		return o.run(ctx, append([]string{"dnf", "-y", "install"}, pkgs...)...)
	}
	if err := o.run(ctx, append(slices.Clone(aptGet), "update")...); err != nil {
		return err
	}
	return o.run(ctx, append(append(slices.Clone(aptGet), "install"), pkgs...)...)
}

func (o *execOps) Remove(ctx context.Context, pkgs []string) error {
	installed, err := o.Query(ctx)
	if err != nil {
		return err
	}
	for _, name := range pkgs {
		if !slices.ContainsFunc(installed, func(p packager.Package) bool { return p.Name == name }) {
			return fmt.Errorf("%s is not installed in %s", name, o.c.Ref)
		}
	}
	if o.name == "dnf" {
		return o.run(ctx, append([]string{"dnf", "-y", "remove"}, pkgs...)...)
	}
	return o.run(ctx, append(append(slices.Clone(aptGet), "remove"), pkgs...)...)
}

func (o *execOps) Update(ctx context.Context, pkgs []string) (bool, error) {
	before, err := o.Query(ctx)
	if err != nil {
		return false, err
	}
	if o.name == "dnf" {
		err = o.run(ctx, append([]string{"dnf", "-y", "upgrade"}, pkgs...)...)
	} else if err = o.run(ctx, append(slices.Clone(aptGet), "update")...); err == nil {
		if len(pkgs) == 0 {
			err = o.run(ctx, append(slices.Clone(aptGet), "dist-upgrade")...)
		} else {
			err = o.run(ctx, append(append(slices.Clone(aptGet), "install", "--only-upgrade"), pkgs...)...)
		}
	}
	if err != nil {
		return false, err
	}
	after, err := o.Query(ctx)
	if err != nil {
		return false, err
	}
	return !slices.Equal(before, after), nil
}

func (o *execOps) Query(ctx context.Context) ([]packager.Package, error) {
	var pkgs []packager.Package
	if o.name == "dnf" {
		out, err := o.output(ctx, "rpm", "-qa", "--qf", "%{name}\t%{epoch}:%{version}-%{release}\t%{arch}\n")
		if err != nil {
			return nil, err
		}
		for _, l := range strings.Split(out, "\n") {
			f := strings.Split(l, "\t")
			if len(f) != 3 || f[0] == "gpg-pubkey" {
				continue
			}
			if e, v, ok := strings.Cut(f[1], ":"); ok && (e == "(none)" || e == "0") {
				f[1] = v
			}
			pkgs = append(pkgs, packager.Package{Name: f[0], Version: f[1], Arch: f[2]})
		}
	} else {
		out, err := o.output(ctx, "dpkg-query", "-W", "-f", "${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n")
		if err != nil {
			return nil, err
		}
		for _, l := range strings.Split(out, "\n") {
			f := strings.Split(l, "\t")
			if len(f) == 4 && strings.TrimSpace(f[0]) == "ii" {
				pkgs = append(pkgs, packager.Package{Name: f[1], Version: f[2], Arch: f[3]})
			}
		}
	}
	packager.SortPackages(pkgs)
	return pkgs, nil
}

func (o *execOps) CheckUpdates(ctx context.Context) ([]packager.Package, error) {
	var ups []packager.Package
	if o.name == "dnf" {
		out, err := o.output(ctx, "dnf", "-q", "repoquery", "--upgrades", "--latest-limit=1", "--qf", "%{name}\t%{epoch}:%{version}-%{release}\t%{arch}")
		if err != nil {
			return nil, err
		}
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Split(l, "\t"); len(f) == 3 {
				if e, v, ok := strings.Cut(f[1], ":"); ok && e == "0" {
					f[1] = v
				}
				ups = append(ups, packager.Package{Name: f[0], Version: f[1], Arch: f[2]})
			}
		}
	} else {
		if err := o.run(ctx, append(slices.Clone(aptGet), "update")...); err != nil {
			return nil, err
		}
		out, err := o.output(ctx, append(slices.Clone(aptGet), "-s", "dist-upgrade")...)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 4 || f[0] != "Inst" || !strings.HasPrefix(f[2], "[") {
				continue
			}
			ups = append(ups, packager.Package{Name: f[1], Version: strings.TrimPrefix(f[3], "("), Arch: strings.Trim(f[len(f)-1], "[]()")})
		}
	}
	packager.SortPackages(ups)
	return ups, nil
}
