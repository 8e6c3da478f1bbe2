// Package rootfs prepares an installed root file system to become a container
// template: the container fixups, and the reproducible tar archive of the
// tree.
package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// fixups implements the fixups named in tmpl.Fixups (rpmdb-rebuild, which
// needs the template's own rpm, belongs to the dnf packager). Each one works on the
// tree from outside (no chroot), is idempotent, and does nothing where the
// files it changes do not exist.
var fixups = map[string]func(root string) error{
	"apt-clean":                aptClean,
	"dnf-clean":                dnfClean,
	"fstab-empty":              func(root string) error { return writeIfDir(root, "etc/fstab", "") },
	"getty-disable":            gettyDisable,
	"hostname-empty":           func(root string) error { return writeIfDir(root, "etc/hostname", "") },
	"logs-truncate":            logsTruncate,
	"machine-id-empty":         machineIDEmpty,
	"resolv-conf-plain":        func(root string) error { return replaceWithFile(root, "etc/resolv.conf", "") },
	"selinux-disable":          selinuxDisable,
	"ssh-host-keys-regenerate": sshHostKeys,
	"systemd-container":        systemdContainer,
}

// Fixup applies the named fixups to root in order, then removes what a build
// must never leave behind (policy-rc.d).
func Fixup(root string, names []string) error {
	for _, n := range names {
		f, ok := fixups[n]
		if !ok {
			return fmt.Errorf("unknown fixup %q", n)
		}
		if err := f(root); err != nil {
			return fmt.Errorf("fixup %s: %w", n, err)
		}
	}
	return removeAll(root, "usr/sbin/policy-rc.d")
}

func aptClean(root string) error {
	return removeGlobs(root,
		"var/lib/apt/lists/*_*", "var/lib/apt/lists/partial/*",
		"var/cache/apt/*.bin", "var/cache/apt/archives/*.deb", "var/cache/apt/archives/partial/*",
		"var/lib/apt/extended_states.old")
}

func dnfClean(root string) error {
	return removeGlobs(root, "var/cache/dnf/*", "var/cache/yum/*", "var/lib/dnf/repos/*")
}

// gettyDisable masks the units that would start terminals: a container is
// entered with vzctl enter / lxc-attach or has one console, not ttys.
func gettyDisable(root string) error {
	if err := removeGlobs(root, "etc/systemd/system/getty.target.wants/*"); err != nil {
		return err
	}
	return mask(root, "getty@.service", "serial-getty@.service", "console-getty.service", "container-getty@.service", "getty-static.service")
}

// systemdContainer masks units for hardware and kernel state a container does
// not own.
func systemdContainer(root string) error {
	return mask(root,
		"systemd-udevd.service", "systemd-udevd-control.socket", "systemd-udevd-kernel.socket",
		"systemd-udev-trigger.service", "systemd-udev-settle.service",
		"systemd-remount-fs.service", "systemd-modules-load.service", "kmod-static-nodes.service",
		"systemd-timesyncd.service", "sys-kernel-debug.mount", "sys-kernel-tracing.mount",
		"sys-kernel-config.mount", "sys-fs-fuse-connections.mount", "proc-sys-fs-binfmt_misc.automount")
}

// mask links units to /dev/null in /etc/systemd/system, when the root has systemd.
func mask(root string, units ...string) error {
	dir := filepath.Join(root, "etc/systemd/system")
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	for _, u := range units {
		p := filepath.Join(dir, u)
		if err := os.RemoveAll(p); err != nil {
			return err
		}
		if err := os.Symlink("/dev/null", p); err != nil {
			return err
		}
	}
	return nil
}

func logsTruncate(root string) error {
	logs := filepath.Join(root, "var/log")
	err := filepath.WalkDir(logs, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		return os.Truncate(p, 0)
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// machineIDEmpty leaves an empty /etc/machine-id, which systemd (on Debian,
// Ubuntu and the RPM distributions alike) takes as "first boot": it generates
// an id and runs the first-boot presets.
func machineIDEmpty(root string) error {
	if err := replaceWithFile(root, "etc/machine-id", ""); err != nil {
		return err
	}
	return removeAll(root, "var/lib/dbus/machine-id")
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
func sshHostKeys(root string) error {
	if err := removeGlobs(root, "etc/ssh/ssh_host_*"); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(root, "usr/sbin/sshd")); err != nil {
		return nil
	}
	sys := filepath.Join(root, "etc/systemd/system")
	if _, err := os.Stat(sys); err != nil {
		return nil
	}
	const unit = "vzpkg-ssh-host-keys.service"
	if err := os.WriteFile(filepath.Join(sys, unit), []byte(sshKeygenUnit), 0o644); err != nil {
		return err
	}
	wants := filepath.Join(sys, "multi-user.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		return err
	}
	link := filepath.Join(wants, unit)
	os.Remove(link)
	return os.Symlink("/etc/systemd/system/"+unit, link)
}

func selinuxDisable(root string) error {
	p := filepath.Join(root, "etc/selinux/config")
	data, err := os.ReadFile(p)
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
	return os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o644)
}

// writeIfDir writes content to rel when its directory exists.
func writeIfDir(root, rel, content string) error {
	p := filepath.Join(root, rel)
	if _, err := os.Stat(filepath.Dir(p)); err != nil {
		return nil
	}
	return replaceWithFile(root, rel, content)
}

// replaceWithFile makes rel a regular file (mode 0644) holding content,
// replacing a symlink (e.g. resolv.conf pointing into /run).
func replaceWithFile(root, rel, content string) error {
	p := filepath.Join(root, rel)
	if fi, err := os.Lstat(p); err == nil && !fi.Mode().IsRegular() {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Truncate(p, int64(len(content)))
}

func removeAll(root, rel string) error {
	return os.RemoveAll(filepath.Join(root, rel))
}

func removeGlobs(root string, patterns ...string) error {
	for _, pat := range patterns {
		matches, err := filepath.Glob(filepath.Join(root, pat))
		if err != nil {
			return err
		}
		for _, m := range matches {
			if err := os.RemoveAll(m); err != nil {
				return err
			}
		}
	}
	return nil
}
