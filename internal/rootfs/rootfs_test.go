package rootfs

import (
	"archive/tar"
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tree builds a small root with the kinds of files a template holds.
func tree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"etc", "usr/bin", "var/log/apt", "run"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "usr/bin/ping"), []byte("\x7fELF ping"), 0o755)
	os.WriteFile(filepath.Join(root, "usr/bin/su"), []byte("\x7fELF su"), 0o4755)
	os.Chmod(filepath.Join(root, "usr/bin/su"), 0o755|os.ModeSetuid)
	os.Link(filepath.Join(root, "usr/bin/ping"), filepath.Join(root, "usr/bin/ping4"))
	os.Symlink("usr/bin", filepath.Join(root, "bin"))
	os.Chown(filepath.Join(root, "etc/passwd"), 0, 42)
	syscall.Mkfifo(filepath.Join(root, "run/initctl"), 0o600)
	if out, err := exec.Command("setcap", "cap_net_raw+ep", filepath.Join(root, "usr/bin/ping")).CombinedOutput(); err != nil {
		t.Fatalf("setcap (tests run as root): %v %s", err, out)
	}
	if l, err := net.Listen("unix", filepath.Join(root, "run/sock")); err == nil {
		t.Cleanup(func() { l.Close() })
	}
	return root
}

func readAll(t *testing.T, data []byte) map[string]*tar.Header {
	t.Helper()
	hdrs := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(data))
	var order []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		hdrs[h.Name] = h
		order = append(order, h.Name)
	}
	for i := 1; i < len(order); i++ {
		if strings.TrimSuffix(order[i-1], "/") >= strings.TrimSuffix(order[i], "/") {
			t.Errorf("entries not sorted: %q before %q", order[i-1], order[i])
		}
	}
	return hdrs
}

func TestPackKeepsWhatATemplateNeeds(t *testing.T) {
	root := tree(t)
	epoch := time.Unix(1700000000, 0)
	var buf bytes.Buffer
	if err := Pack(root, &buf, epoch); err != nil {
		t.Fatal(err)
	}
	h := readAll(t, buf.Bytes())
	if p := h["./etc/passwd"]; p == nil || p.Uid != 0 || p.Gid != 42 || p.Uname != "" || p.Gname != "" {
		t.Errorf("./etc/passwd: want numeric owner 0:42 and no names, got %+v", p)
	}
	if su := h["./usr/bin/su"]; su == nil || su.Mode&0o4000 == 0 {
		t.Errorf("setuid bit lost on su: %+v", su)
	}
	if l := h["./usr/bin/ping4"]; l == nil || l.Typeflag != tar.TypeLink || l.Linkname != "./usr/bin/ping" {
		t.Errorf("hard link ping4: got %+v", l)
	}
	if s := h["./bin"]; s == nil || s.Typeflag != tar.TypeSymlink || s.Linkname != "usr/bin" {
		t.Errorf("symlink bin: got %+v", s)
	}
	if f := h["./run/initctl"]; f == nil || f.Typeflag != tar.TypeFifo {
		t.Errorf("fifo: got %+v", f)
	}
	if _, ok := h["./run/sock"]; ok {
		t.Error("a socket was packed")
	}
	if d := h["./etc/"]; d == nil || d.Typeflag != tar.TypeDir {
		t.Errorf("directories are named with a slash: %+v", d)
	}
	if cap := h["./usr/bin/ping"].PAXRecords["SCHILY.xattr.security.capability"]; cap == "" {
		t.Error("file capability of ping lost")
	}
	for name, hdr := range h {
		if hdr.ModTime.After(epoch) {
			t.Errorf("%s: mtime %v after the epoch", name, hdr.ModTime)
		}
	}

	// GNU tar restores the capability.
	out := t.TempDir()
	cmd := exec.Command("tar", "-xp", "--xattrs", "--xattrs-include=*", "-C", out)
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v %s", err, msg)
	}
	if got, _ := exec.Command("getcap", filepath.Join(out, "usr/bin/ping")).Output(); !strings.Contains(string(got), "cap_net_raw=ep") {
		t.Errorf("getcap after extraction: %q", got)
	}

	// Same tree, later mtimes: the same bytes.
	now := time.Now()
	os.Chtimes(filepath.Join(root, "etc/passwd"), now, now)
	var again bytes.Buffer
	if err := Pack(root, &again, epoch); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("packing the same tree twice under one epoch gave different archives")
	}
}

func TestFixups(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"etc/ssh", "etc/systemd/system/getty.target.wants", "var/log/apt", "var/lib/dbus", "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "usr/sbin"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	files := map[string]string{
		"etc/machine-id":                         "0123456789abcdef\n",
		"var/lib/dbus/machine-id":                "0123456789abcdef\n",
		"etc/ssh/ssh_host_ed25519_key":           "secret",
		"etc/ssh/ssh_host_ed25519_key.pub":       "public",
		"etc/ssh/sshd_config":                    "Port 22\n",
		"usr/sbin/sshd":                          "\x7fELF",
		"var/log/apt/history.log":                "Start-Date: ...",
		"etc/hostname":                           "buildhost\n",
		"var/lib/apt/lists/deb_dists_Packages":   "Package: x\n",
		"var/lib/apt/lists/lock":                 "",
		"var/cache/apt/archives/hello_1_all.deb": "deb",
		"usr/sbin/policy-rc.d":                   "#!/bin/sh\nexit 101\n",
	}
	for name, content := range files {
		os.WriteFile(filepath.Join(root, name), []byte(content), 0o644)
	}
	os.Symlink("../run/systemd/resolve/stub-resolv.conf", filepath.Join(root, "etc/resolv.conf"))
	os.Symlink("/usr/lib/systemd/system/getty@.service", filepath.Join(root, "etc/systemd/system/getty.target.wants/getty@tty1.service"))

	names := []string{"machine-id-empty", "ssh-host-keys-regenerate", "hostname-empty", "getty-disable", "systemd-container", "logs-truncate", "apt-clean", "resolv-conf-plain"}
	if err := Fixup(root, names); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string { data, _ := os.ReadFile(filepath.Join(root, name)); return string(data) }
	exists := func(name string) bool { _, err := os.Lstat(filepath.Join(root, name)); return err == nil }
	checks := []struct {
		what string
		ok   bool
	}{
		{"machine-id empty", exists("etc/machine-id") && read("etc/machine-id") == ""},
		{"dbus machine-id gone", !exists("var/lib/dbus/machine-id")},
		{"ssh host keys gone", !exists("etc/ssh/ssh_host_ed25519_key") && !exists("etc/ssh/ssh_host_ed25519_key.pub")},
		{"sshd_config kept", read("etc/ssh/sshd_config") == "Port 22\n"},
		{"first-boot key unit enabled", strings.Contains(read("etc/systemd/system/vzpkg-ssh-host-keys.service"), "ssh-keygen -A") &&
			linksTo(root, "etc/systemd/system/multi-user.target.wants/vzpkg-ssh-host-keys.service", "/etc/systemd/system/vzpkg-ssh-host-keys.service")},
		{"hostname empty", exists("etc/hostname") && read("etc/hostname") == ""},
		{"getty masked", isMasked(root, "getty@.service") && !exists("etc/systemd/system/getty.target.wants/getty@tty1.service")},
		{"udev masked", isMasked(root, "systemd-udevd.service")},
		{"logs truncated, kept", exists("var/log/apt/history.log") && read("var/log/apt/history.log") == ""},
		{"apt lists emptied", !exists("var/lib/apt/lists/deb_dists_Packages") && exists("var/lib/apt/lists/partial")},
		{"apt archives emptied", !exists("var/cache/apt/archives/hello_1_all.deb")},
		{"resolv.conf a plain empty file", isRegular(root, "etc/resolv.conf") && read("etc/resolv.conf") == ""},
		{"policy-rc.d removed", !exists("usr/sbin/policy-rc.d")},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("after fixups: want %s", c.what)
		}
	}
	if err := Fixup(root, names); err != nil {
		t.Errorf("fixups are not idempotent: %v", err)
	}
	if err := Fixup(root, []string{"no-such-fixup"}); err == nil {
		t.Error("an unknown fixup was accepted")
	}
}

func isMasked(root, unit string) bool {
	return linksTo(root, filepath.Join("etc/systemd/system", unit), "/dev/null")
}

func linksTo(root, name, target string) bool {
	got, err := os.Readlink(filepath.Join(root, name))
	return err == nil && got == target
}

func isRegular(root, name string) bool {
	fi, err := os.Lstat(filepath.Join(root, name))
	return err == nil && fi.Mode().IsRegular()
}

func TestMountAPIAndUnmountUnder(t *testing.T) {
	root := t.TempDir()
	m, err := MountAPI(root)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := MountsUnder(root); len(got) < 2 {
		t.Fatalf("mounts under root after MountAPI: %v", got)
	}
	if _, err := os.Stat(filepath.Join(root, "proc/self/status")); err != nil {
		t.Errorf("/proc not usable in root: %v", err)
	}
	if err := UnmountUnder(root); err != nil {
		t.Fatal(err)
	}
	if got, _ := MountsUnder(root); len(got) != 0 {
		t.Errorf("left mounted: %v", got)
	}
	if err := m.Unmount(); err != nil {
		t.Errorf("a second unmount failed: %v", err)
	}
}

func TestMountTmpfs(t *testing.T) {
	root := t.TempDir()
	if OnTmpfs(root) {
		t.Skipf("%s is on a tmpfs already", root)
	}
	if err := MountTmpfs(root, 16<<20); err != nil {
		t.Fatal(err)
	}
	if !OnTmpfs(root) {
		t.Error("OnTmpfs is false on the tmpfs just mounted")
	}
	fi, err := os.Stat(root)
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("the tmpfs top directory: got %v (%v), want mode 0755", fi.Mode(), err)
	}
	// The size is a limit: a build filling it fails instead of eating the memory.
	if err := os.WriteFile(filepath.Join(root, "big"), make([]byte, 17<<20), 0o644); err == nil {
		t.Error("wrote 17 MiB into a 16 MiB tmpfs")
	}
	if err := UnmountUnder(root); err != nil {
		t.Fatal(err)
	}
	if OnTmpfs(root) {
		t.Error("still on a tmpfs after UnmountUnder")
	}
}

// TestPackDoesNotFollowLinks packs a root holding symbolic links to a
// directory outside it, absolute and relative: each is packed as a link,
// and nothing of the outside directory is in the archive.
func TestPackDoesNotFollowLinks(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	os.MkdirAll(filepath.Join(outside, "etc"), 0o755)
	os.WriteFile(filepath.Join(outside, "etc/shadow"), []byte("root:OUTSIDE-SECRET:19000::::::\n"), 0o600)
	root := filepath.Join(base, "root")
	os.MkdirAll(filepath.Join(root, "var"), 0o755)
	os.Symlink(outside, filepath.Join(root, "abs"))
	os.Symlink("../../../../../../.."+outside, filepath.Join(root, "var/rel"))
	os.Symlink(filepath.Join(outside, "etc/shadow"), filepath.Join(root, "shadow"))
	var buf bytes.Buffer
	if err := Pack(root, &buf, time.Time{}); err != nil {
		t.Fatal(err)
	}
	h := readAll(t, buf.Bytes())
	for name, target := range map[string]string{"./abs": outside, "./var/rel": "../../../../../../.." + outside, "./shadow": filepath.Join(outside, "etc/shadow")} {
		if e := h[name]; e == nil || e.Typeflag != tar.TypeSymlink || e.Linkname != target {
			t.Errorf("%s: want a symbolic link to %s, got %+v", name, target, e)
		}
	}
	for name := range h {
		if strings.HasPrefix(name, "./abs/") || strings.HasPrefix(name, "./var/rel/") {
			t.Errorf("packed %s, from outside the root", name)
		}
	}
	if bytes.Contains(buf.Bytes(), []byte("OUTSIDE-SECRET")) {
		t.Error("the archive holds the content of a file outside the root")
	}
}

// TestMountDoesNotPropagateOut binds a shared directory (as /dev is on a
// systemd host) into a root and mounts a tmpfs on a directory of the bind:
// the tmpfs must stay in the root, not appear in the shared source too.
// (Needs root.)
func TestMountDoesNotPropagateOut(t *testing.T) {
	base := t.TempDir()
	host, root := filepath.Join(base, "host"), filepath.Join(base, "root")
	os.MkdirAll(host, 0o755)
	os.MkdirAll(root, 0o755)
	t.Cleanup(func() { UnmountUnder(base) })
	if err := MountTmpfs(host, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("", host, "", syscall.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(host, "shm"), 0o755)
	var m Mounts
	if err := m.Mount(root, "dev", host, "", syscall.MS_BIND|syscall.MS_REC); err != nil {
		t.Fatal(err)
	}
	if err := m.Mount(root, "dev/shm", "tmpfs", "tmpfs", 0); err != nil {
		t.Fatal(err)
	}
	if !OnTmpfs(filepath.Join(root, "dev/shm")) {
		t.Fatal("no tmpfs on dev/shm in the root")
	}
	if got, _ := MountsUnder(host); len(got) != 1 {
		t.Errorf("mounts under the shared source: got %v, want only itself (the tmpfs on the root's dev/shm propagated out)", got)
	}
	if err := m.Unmount(); err != nil {
		t.Fatal(err)
	}
	if got, _ := MountsUnder(root); len(got) != 0 {
		t.Errorf("left mounted in the root: %v", got)
	}
}
