// Package rootfs prepares an installed root file system to become a container
// template: the container fixups, and the reproducible tar archive of the
// tree.
package rootfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// FixupInfo describes a fixup: a named change a build applies to a
// template's root after its packages are installed. Templates may name
// only the fixups Fixups lists.
type FixupInfo struct {
	Name     string
	Packager string // only for templates of this packager ("apt", "dnf"); "" for all
	Doc      string
}

// fixup is a FixupInfo with its implementation: run works on the tree from
// outside (no chroot) through an os.Root, so nothing it does leaves the
// root; chroot runs the root's own programs in a chroot of it
// (rootfs.Command, with MountAPI's mounts). Each is idempotent, and does
// nothing where the files it changes do not exist.
type fixup struct {
	FixupInfo
	run    func(r *os.Root) error
	chroot func(ctx context.Context, root string) error
}

// fixupTable is every fixup, its documentation with its code, by name.
var fixupTable = []fixup{
	{FixupInfo{"apt-clean", "apt", "remove downloaded .deb files and apt lists (/var/cache/apt/archives, /var/lib/apt/lists)"}, aptClean, nil},
	{FixupInfo{"dnf-clean", "dnf", "remove dnf caches (/var/cache/dnf, /var/lib/dnf/repos)"}, dnfClean, nil},
	{FixupInfo{"fstab-empty", "", "leave /etc/fstab empty: a container mounts nothing itself"},
		func(r *os.Root) error { return writeIfDir(r, "etc/fstab", "") }, nil},
	{FixupInfo{"getty-disable", "", "mask getty@ and serial-getty@ units: a container has a console, no terminals"}, gettyDisable, nil},
	{FixupInfo{"hostname-empty", "", "empty /etc/hostname; the container manager sets the name"},
		func(r *os.Root) error { return writeIfDir(r, "etc/hostname", "") }, nil},
	{FixupInfo{"logs-truncate", "", "truncate every file under /var/log so the template carries no build logs"}, logsTruncate, nil},
	{FixupInfo{"machine-id-empty", "", "empty /etc/machine-id and remove /var/lib/dbus/machine-id so every container gets its own"}, machineIDEmpty, nil},
	{FixupInfo{"resolv-conf-plain", "", "replace a /etc/resolv.conf symlink with an empty file the container manager fills"},
		func(r *os.Root) error { return WriteFile(r, "etc/resolv.conf", nil, 0o644) }, nil},
	{FixupInfo{"rpmdb-rebuild", "dnf", "rebuild the rpm database with the template's own rpm (the host's may write another format)"}, nil, rpmdbRebuild},
	{FixupInfo{"selinux-disable", "dnf", "set SELINUX=disabled: a container does not load its own policy"}, selinuxDisable, nil},
	{FixupInfo{"ssh-host-keys-regenerate", "", "delete SSH host keys and arrange for new ones on first boot"}, sshHostKeys, nil},
	{FixupInfo{"systemd-container", "", "mask systemd units that cannot work in a container (udev, remount-fs, modules-load, time sync)"}, systemdContainer, nil},
}

// Fixups lists every fixup, sorted by name.
func Fixups() []FixupInfo {
	out := make([]FixupInfo, len(fixupTable))
	for i, f := range fixupTable {
		out[i] = f.FixupInfo
	}
	return out
}

func lookupFixup(name string) (fixup, bool) {
	i := slices.IndexFunc(fixupTable, func(f fixup) bool { return f.Name == name })
	if i < 0 {
		return fixup{}, false
	}
	return fixupTable[i], true
}

// Fixup applies the named fixups to root in order, then removes what a build
// must never leave behind (policy-rc.d). A fixup whose files are reached
// through a symbolic link out of the root fails.
func Fixup(root string, names []string) error {
	for _, n := range names {
		if _, ok := lookupFixup(n); !ok {
			return fmt.Errorf("unknown fixup %q", n)
		}
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	for _, n := range names {
		if f, _ := lookupFixup(n); f.chroot != nil {
			err = f.chroot(context.Background(), root)
		} else {
			err = f.run(r)
		}
		if err != nil {
			return fmt.Errorf("fixup %s: %w", n, Explain(root, err))
		}
	}
	return Explain(root, r.RemoveAll("usr/sbin/policy-rc.d"))
}

func aptClean(r *os.Root) error {
	return RemoveGlobs(r,
		"var/lib/apt/lists/*_*", "var/lib/apt/lists/partial/*",
		"var/cache/apt/*.bin", "var/cache/apt/archives/*.deb", "var/cache/apt/archives/partial/*",
		"var/lib/apt/extended_states.old")
}

func dnfClean(r *os.Root) error {
	return RemoveGlobs(r, "var/cache/dnf/*", "var/cache/yum/*", "var/lib/dnf/repos/*")
}

// gettyDisable masks the units that would start terminals: a container is
// entered with vzctl enter / lxc-attach or has one console, not ttys.
func gettyDisable(r *os.Root) error {
	if err := RemoveGlobs(r, "etc/systemd/system/getty.target.wants/*"); err != nil {
		return err
	}
	return mask(r, "getty@.service", "serial-getty@.service", "console-getty.service", "container-getty@.service", "getty-static.service")
}

// systemdContainer masks units for hardware and kernel state a container does
// not own.
func systemdContainer(r *os.Root) error {
	return mask(r,
		"systemd-udevd.service", "systemd-udevd-control.socket", "systemd-udevd-kernel.socket",
		"systemd-udev-trigger.service", "systemd-udev-settle.service",
		"systemd-remount-fs.service", "systemd-modules-load.service", "kmod-static-nodes.service",
		"systemd-timesyncd.service", "sys-kernel-debug.mount", "sys-kernel-tracing.mount",
		"sys-kernel-config.mount", "sys-fs-fuse-connections.mount", "proc-sys-fs-binfmt_misc.automount")
}

// mask links units to /dev/null in /etc/systemd/system, when the root has systemd.
func mask(r *os.Root, units ...string) error {
	const dir = "etc/systemd/system"
	if _, err := r.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	for _, u := range units {
		p := path.Join(dir, u)
		if err := r.RemoveAll(p); err != nil {
			return err
		}
		if err := r.Symlink("/dev/null", p); err != nil {
			return err
		}
	}
	return nil
}

func logsTruncate(r *os.Root) error {
	err := fs.WalkDir(r.FS(), "var/log", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := r.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			return err
		}
		return f.Close()
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// machineIDEmpty leaves an empty /etc/machine-id, which systemd (on Debian,
// Ubuntu and the RPM distributions alike) takes as "first boot": it generates
// an id and runs the first-boot presets.
func machineIDEmpty(r *os.Root) error {
	if err := WriteFile(r, "etc/machine-id", nil, 0o644); err != nil {
		return err
	}
	return r.RemoveAll("var/lib/dbus/machine-id")
}

const sshKeygenUnit = `# Installed by vzpkg: a template carries no SSH host keys; every container
# creates its own on first boot.
[Unit]
Description=Generate SSH host keys on first boot
Before=ssh.service sshd.service
ConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
`

// sshHostKeys removes the host keys; when the root has an SSH server and
// systemd, a oneshot unit creates new ones before sshd starts on first boot.
func sshHostKeys(r *os.Root) error {
	if err := RemoveGlobs(r, "etc/ssh/ssh_host_*"); err != nil {
		return err
	}
	if _, err := r.Stat("usr/sbin/sshd"); err != nil {
		return nil
	}
	const sys = "etc/systemd/system"
	if _, err := r.Stat(sys); err != nil {
		return nil
	}
	const unit = "vzpkg-ssh-host-keys.service"
	if err := WriteFile(r, path.Join(sys, unit), []byte(sshKeygenUnit), 0o644); err != nil {
		return err
	}
	wants := path.Join(sys, "multi-user.target.wants")
	if err := r.MkdirAll(wants, 0o755); err != nil {
		return err
	}
	link := path.Join(wants, unit)
	if err := r.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return r.Symlink("/etc/systemd/system/"+unit, link)
}

func selinuxDisable(r *os.Root) error {
	const p = "etc/selinux/config"
	data, err := r.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "SELINUX=") {
			lines[i] = "SELINUX=disabled"
		}
	}
	return WriteFile(r, p, []byte(strings.Join(lines, "\n")), 0o644)
}

// writeIfDir writes content to rel when its directory exists.
func writeIfDir(r *os.Root, rel, content string) error {
	if _, err := r.Stat(path.Dir(rel)); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	return WriteFile(r, rel, []byte(content), 0o644)
}

// builtDBPath is where a dnf build leaves the rpm database.
const builtDBPath = "/var/lib/rpm"

// rpmdbRebuild rebuilds the rpm database with the root's own rpm, in a
// chroot, so that it is in the format and the place that rpm reads: the
// host's rpm, which dnf --installroot ran, may write another format, and
// puts it in /var/lib/rpm where Fedora and EL 10 read /usr/lib/sysimage/rpm.
// A database elsewhere than the root's rpm reads is exported and imported
// there (rpmdb --exportdb/--importdb, rpm 4.16 and later), and
// /var/lib/rpm becomes a link to it, as those distributions have it. A root
// without rpm has nothing to rebuild with, and nothing that reads the
// database: the fixup leaves it.
func rpmdbRebuild(ctx context.Context, root string) (err error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := r.Stat("usr/bin/rpm"); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	m, err := MountAPI(root)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, m.Unmount()) }()
	run := func(stdin []byte, argv ...string) ([]byte, error) {
		cmd := Command(ctx, root, nil, argv...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if stdin != nil {
			cmd.Stdin = bytes.NewReader(stdin)
		}
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("%s in %s: %w: %s", strings.Join(argv, " "), root, err, strings.TrimSpace(errOut.String()))
		}
		return out.Bytes(), nil
	}
	out, err := run(nil, "rpm", "--eval", "%{_dbpath}")
	if err != nil {
		return err
	}
	target := path.Clean(strings.TrimSpace(string(out)))
	if !path.IsAbs(target) || target == "/" {
		return fmt.Errorf("the root's rpm names %q as its database directory", target)
	}
	built := false
	if fi, err := r.Lstat(builtDBPath[1:]); err == nil && fi.IsDir() {
		for _, f := range []string{"rpmdb.sqlite", "Packages", "Packages.db"} {
			if _, err := r.Lstat(builtDBPath[1:] + "/" + f); err == nil {
				built = true
			}
		}
	}
	if target == builtDBPath || !built {
		_, err := run(nil, "rpm", "--rebuilddb")
		return err
	}
	if err := r.MkdirAll(target[1:], 0o755); err != nil {
		return err
	}
	if err := RemoveGlobs(r, target[1:]+"/*"); err != nil {
		return err
	}
	dump, err := run(nil, "rpmdb", "--dbpath", builtDBPath, "--exportdb")
	if err != nil {
		return err
	}
	if _, err := run(dump, "rpmdb", "--dbpath", target, "--importdb"); err != nil {
		return err
	}
	if err := r.RemoveAll(builtDBPath[1:]); err != nil {
		return err
	}
	return r.Symlink(relLink(builtDBPath, target), builtDBPath[1:])
}

// relLink returns the relative target of a link at from that leads to to
// (both absolute and clean, slash-separated).
func relLink(from, to string) string {
	up := strings.Count(path.Dir(from), "/")
	if path.Dir(from) == "/" {
		up = 0
	}
	return strings.Repeat("../", up) + strings.TrimPrefix(to, "/")
}
