// Package rootfstest builds hostile roots for tests: a root where one place
// is a symbolic link to a sentinel directory outside it, and the checks that
// nothing done to the root reached the sentinel or mounted anything outside
// the root. The in-container commands' tests use the same cases.
package rootfstest

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Links are the places of a root that a hostile root turns into a symbolic
// link out of it, one at a time.
var Links = []string{
	"etc", "etc/systemd/system", "etc/systemd/system/getty.target.wants", "etc/apt", "etc/yum.repos.d",
	"var/log", "var/cache/apt/archives", "var/lib/apt/lists", "proc", "dev", "sys", "etc/resolv.conf",
}

// Marker starts every file of a sentinel: an archive or a file in the root
// holding it has read the sentinel.
const Marker = "SENTINEL-c0ffee "

// sentinelFiles are the names the fixups, the repository configuration and
// the mounts would touch, wherever in the tree the link points: at the top
// (when the link is etc/apt, the sentinel stands for etc/apt) and under the
// names they have below etc, var and so on.
var sentinelFiles = []string{
	"hostname", "machine-id", "fstab", "resolv.conf", "sources.list", "sources.list.d/extra.list",
	"fedora.repo", "hello_1_all.deb", "deb.debian.org_debian_dists_bookworm_InRelease", "partial/half.deb",
	"history.log", "apt/history.log", "syslog", "getty@tty1.service", "getty@.service",
	"systemd-udevd.service", "ssh_host_ed25519_key", "self/status", "null", "kernel/notes",
	"systemd/system/getty@.service", "systemd/system/getty.target.wants/getty@tty1.service",
	"systemd/system/systemd-udevd.service", "apt/sources.list", "apt/sources.list.d/extra.list",
	"apt/trusted.gpg.d/debian.gpg", "ssh/ssh_host_ed25519_key", "selinux/config", "dpkg/dpkg.cfg.d/excludes",
	"yum.repos.d/fedora.repo", "vzpkg-update.list", "udev_99_all.deb", "vzpkg-update-debian.gpg",
	"apt/trusted.gpg.d/vzpkg-update-debian.gpg",
}

// Sentinel creates the sentinel directory dir, full of files holding Marker.
func Sentinel(t testing.TB, dir string) {
	t.Helper()
	for _, name := range sentinelFiles {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(Marker+name+"\nSELINUX=enforcing\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Link replaces rel in root (and anything below it) with a symbolic link to
// target: absolute, or relative with more "../" than it takes to climb to /.
func Link(t testing.TB, root, rel, target string, relative bool) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.RemoveAll(p); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if relative {
		depth := strings.Count(filepath.Join(root, rel), "/")
		target = strings.Repeat("../", depth+3) + strings.TrimPrefix(target, "/")
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// Sums returns a description of everything under dir: for each path its type,
// mode, and content's SHA-256 or link target. It does not follow links.
func Sums(t testing.TB, dir string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		switch {
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(data)
			desc += " " + hex.EncodeToString(h[:])
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		}
		sums[strings.TrimPrefix(p, dir)] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("checksum %s: %v", dir, err)
	}
	return sums
}

// Changes lists how after differs from before, one line per path.
func Changes(before, after map[string]string) []string {
	var out []string
	for p, b := range before {
		if a, ok := after[p]; !ok {
			out = append(out, fmt.Sprintf("%s removed (was %s)", p, b))
		} else if a != b {
			out = append(out, fmt.Sprintf("%s changed: %s, was %s", p, a, b))
		}
	}
	for p, a := range after {
		if _, ok := before[p]; !ok {
			out = append(out, fmt.Sprintf("%s created: %s", p, a))
		}
	}
	slices.Sort(out)
	return out
}

// MountPoints returns the mount points of this process, from /proc/self/mounts.
func MountPoints(t testing.TB) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 1 {
			points = append(points, unescape(fields[1]))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return points
}

// NewMounts returns the mount points at or below dir that are not in
// before (a mount stacked on an existing point counts once for each time it
// is listed). It looks only below dir: other tests, of other packages run
// at the same time, mount and unmount elsewhere in the same mount namespace.
func NewMounts(t testing.TB, before []string, dir string) []string {
	t.Helper()
	count := map[string]int{}
	for _, p := range before {
		count[p]++
	}
	var added []string
	for _, p := range MountPoints(t) {
		if count[p] > 0 {
			count[p]--
			continue
		}
		if p == dir || strings.HasPrefix(p, dir+"/") {
			added = append(added, p)
		}
	}
	return added
}

// Outside returns the points that are neither root nor below it.
func Outside(points []string, root string) []string {
	var out []string
	for _, p := range points {
		if p != root && !strings.HasPrefix(p, root+"/") {
			out = append(out, p)
		}
	}
	return out
}

// DetachNew detaches, deepest first, every mount made at or below dir since
// before: what a failed test would otherwise leave on the machine.
func DetachNew(t testing.TB, before []string, dir string) {
	t.Helper()
	added := NewMounts(t, before, dir)
	slices.SortFunc(added, func(a, b string) int { return len(b) - len(a) })
	for _, p := range added {
		if err := unix.Unmount(p, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil {
			t.Errorf("detach %s left by the test: %v", p, err)
		}
	}
}

func unescape(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}
