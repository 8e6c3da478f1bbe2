package container

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"vzpkg2/internal/packager"
	"vzpkg2/internal/packager/apt"
	"vzpkg2/internal/packager/dnf"
	"vzpkg2/internal/packager/script"
	"vzpkg2/internal/rootfs"
)

func TestParse(t *testing.T) {
	abs, _ := filepath.Abs("./ct")
	tests := []struct {
		ct, driver string
		want       Ref
		wantErr    string
	}{
		{ct: "101", want: Ref{Vzctl, "101"}},
		{ct: "lxc:web1", want: Ref{LXC, "web1"}},
		{ct: "/srv/roots/ct1", want: Ref{Chroot, "/srv/roots/ct1"}},
		{ct: "./ct", want: Ref{Chroot, abs}},
		{ct: "web1", driver: "lxc", want: Ref{LXC, "web1"}},
		{ct: "101", driver: "chroot", want: Ref{Chroot, filepath.Join(filepath.Dir(abs), "101")}},
		{ct: "web1", wantErr: `container "web1": give an OpenVZ CTID`},
		{ct: "lxc:../x", wantErr: `LXC container name "../x"`},
		{ct: "lxc:-h", wantErr: `LXC container name "-h"`},
		{ct: "web1", driver: "vzctl", wantErr: `OpenVZ container "web1": want a numeric CTID`},
		{ct: "101", driver: "docker", wantErr: `driver "docker"`},
	}
	for _, tt := range tests {
		t.Run(tt.ct+"/"+tt.driver, func(t *testing.T) {
			got, err := Parse(tt.ct, tt.driver)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("got %v, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// write makes files (name → content; content "->X" makes a symbolic link to X) under root.
func write(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(content, "->"); ok {
			err = os.Symlink(target, p)
		} else {
			err = os.WriteFile(p, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

var registry = packager.NewRegistry(map[string]packager.Packager{"apt": apt.Backend{}, "dnf": dnf.Dnf{}},
	map[string]packager.Family{"script": script.Family([]string{filepath.Join("..", "..", "templates", "_packagers")})})

func TestSpecFromRoot(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		RecordFile:        "# comment\npackager=dnf\nreleasever=9\narch=x86_64\n",
		"etc/pki/key.asc": "-----BEGIN PGP PUBLIC KEY BLOCK-----\n",
		"etc/yum.repos.d/a.repo": "[base]\nname=x\nbaseurl=http://m1/$releasever/$basearch/\n  http://m2/$releasever/\ngpgkey=file:///etc/pki/key.asc\n" +
			"[off]\nenabled=0\nbaseurl=http://off/\n",
	})
	r, _ := os.OpenRoot(root)
	defer r.Close()
	rec, err := readRecord(r)
	if err != nil || rec.Packager != "dnf" || rec.Releasever != "9" {
		t.Fatalf("record: %+v %v", rec, err)
	}
	keys := t.TempDir()
	spec, err := specFor(t.Context(), r, rec, nil, keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Repos) != 1 || strings.Join(spec.Repos[0].Mirrors, " ") != "http://m1/9/x86_64/ http://m2/9/" {
		t.Errorf("repositories: %+v", spec.Repos)
	}
	if k := spec.Repos[0].Keys; len(k) != 1 || !strings.HasPrefix(k[0], keys+"/") {
		t.Errorf("the key in the root is not copied to the host: %q", k)
	}
}

// TestHostileRoot: what vzpkg reads in a container is read inside it, and
// what it mounts is mounted inside it, whatever links the container holds.
func TestHostileRoot(t *testing.T) {
	outside := t.TempDir()
	write(t, outside, map[string]string{
		"sources.list": "deb http://secret.example/debian bookworm main\n",
		"packager":     "packager=apt\n",
		"pacman.conf":  "[secret]\nServer = http://secret.example/\n",
		"key.asc":      "-----BEGIN PGP PUBLIC KEY BLOCK-----\n",
	})
	// The shipped pacman scripts' pacman-repos reads the root's
	// configuration (the record names the packager script:pacman).
	const pacmanRec = "packager=script:pacman\narch=x86_64\n"
	// Includes fanning out: each of 3 files at a level includes the 3 of
	// the next, 364 files read in all.
	fanOut := map[string]string{RecordFile: pacmanRec, "etc/pacman.conf": "[x]\nServer = http://127.0.0.1:9/\nInclude = /etc/p/1/*\n"}
	for level := 1; level <= 5; level++ {
		for i := range 3 {
			conf := fmt.Sprintf("Server = http://127.0.0.1:9/m%d/\n", level)
			if level < 5 {
				conf += fmt.Sprintf("Include = /etc/p/%d/*\n", level+1)
			}
			fanOut[fmt.Sprintf("etc/p/%d/%d", level, i)] = conf
		}
	}
	tests := []struct {
		name    string
		files   map[string]string
		wantErr string
	}{
		{"script packager's includes fan out", fanOut, "more than 256 configuration files read"},
		{"script packager's Include through a link out", map[string]string{
			RecordFile: pacmanRec, "etc/pacman.conf": "[x]\nInclude = /etc/l/*\n", "etc/l": "->" + outside,
		}, "Include = /etc/l/* leads out of the root"},
		{"record links out", map[string]string{RecordFile: "->" + outside + "/packager"}, "path escapes from parent"},
		{"sources link out", map[string]string{
			"var/lib/dpkg/status": "", "etc/apt/sources.list": "->" + outside + "/sources.list",
		}, "path escapes from parent"},
		{"relative link out", map[string]string{
			"var/lib/dpkg/status": "", "etc/apt/sources.list": "->../../../../../../../../" + outside + "/sources.list",
		}, "path escapes from parent"},
		{"sys is a link", map[string]string{
			"var/lib/dpkg/status": "", "etc/apt/sources.list": "deb http://deb.debian.org/debian bookworm main\n", "sys": "->" + outside,
		}, "sys is a symbolic link in the root: refusing to mount through it"},
		{"file:// repository", map[string]string{
			RecordFile: "packager=dnf\nreleasever=1\n", "etc/yum.repos.d/x.repo": "[x]\nbaseurl=file:///etc/\ngpgkey=http://k/\n",
		}, "file:///etc/: vzpkg manages containers whose repositories are http(s) URLs"},
		{"file:// key out of the root", map[string]string{
			RecordFile: "packager=dnf\nreleasever=1\n", "etc/pki": "->" + outside,
			"etc/yum.repos.d/x.repo": "[x]\nbaseurl=http://m/\ngpgkey=file:///etc/pki/packager\n",
		}, "path escapes from parent"},
		{"script packager's file:// repository", map[string]string{
			RecordFile: pacmanRec, "etc/pacman.conf": "[x]\nServer = file:///etc/\n",
		}, "file:///etc/: vzpkg manages containers whose repositories are http(s) URLs"},
		{"script packager's configuration links out", map[string]string{
			RecordFile: pacmanRec, "etc/pacman.conf": "->" + outside + "/pacman.conf",
		}, "names no enabled repository"},
		{"script packager's key out of the root", map[string]string{
			RecordFile: pacmanRec, "etc/pacman.conf": "[x]\nServer = http://m/\n", "etc/pacman.d/vzpkg-keys": "->" + outside,
		}, "path escapes from parent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			write(t, root, tt.files)
			ctx := context.Background()
			c, err := Open(ctx, Ref{Chroot, root})
			if err != nil {
				t.Fatal(err)
			}
			ops, err := c.Ops(ctx, registry, nil)
			if err == nil {
				defer ops.Close()
				err = ops.Install(ctx, []string{"hello"})
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got %v, want an error saying %q", err, tt.wantErr)
			}
			if left, _ := rootfs.MountsUnder(root); len(left) > 0 {
				t.Errorf("mounts left: %v", left)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 4 {
				t.Errorf("something was written outside the root: %v", ents)
			}
		})
	}
}

// TestHostileRootPacmanPaths: a script packager's container whose pacman
// log, local database or an entry of it links out of it is refused before pacman writes to
// the host's files (removing a package deletes its database entry).
func TestHostileRootPacmanPaths(t *testing.T) {
	for _, tc := range []struct{ link, want string }{
		{"var/log/pacman.log", "/var/log/pacman.log leads out of the root"},
		{"var/lib/pacman/local", "/var/lib/pacman/local leads out of the root"},
		// In pacman's directories, no link at all.
		{"var/lib/pacman/local/hello-1-1", "/var/lib/pacman/local/hello-1-1 is a link or a special file"},
		{"var/cache/pacman/pkg/hello-1-1-any.pkg.tar.zst.part", "/var/cache/pacman/pkg/hello-1-1-any.pkg.tar.zst.part is a link or a special file"},
	} {
		link := tc.link
		t.Run(link, func(t *testing.T) {
			outside := t.TempDir()
			root := pacmanRoot(t)
			// What the link replaces is moved to where it leads.
			target := filepath.Join(outside, filepath.Base(link))
			if err := os.Rename(filepath.Join(root, link), target); err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
			write(t, root, map[string]string{link: "->" + target})
			before := tree(t, outside)
			if err := removeHello(t, root); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error saying %q", err, tc.want)
			}
			if after := tree(t, outside); after != before {
				t.Errorf("pacman changed the host's files through the root's link:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
	// A device node of the root is the host's device.
	t.Run("device", func(t *testing.T) {
		root := pacmanRoot(t)
		if err := unix.Mknod(filepath.Join(root, "var/log/pacman.log"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3))); err != nil {
			t.Fatal(err)
		}
		if err := removeHello(t, root); err == nil || !strings.Contains(err.Error(), "/var/log/pacman.log is neither a file nor a directory") {
			t.Errorf("got %v, want an error naming the device", err)
		}
	})
}

// pacmanRoot makes a root of a script:pacman container with package hello
// installed.
func pacmanRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	write(t, root, map[string]string{
		RecordFile:                             "packager=script:pacman\narch=x86_64\n",
		"etc/pacman.conf":                      "[x]\nServer = http://127.0.0.1:9/\n",
		"var/lib/pacman/local/ALPM_DB_VERSION": "9\n",
		"var/lib/pacman/local/hello-1-1/desc":  "%NAME%\nhello\n\n%VERSION%\n1-1\n\n%ARCH%\nany\n",
		"var/lib/pacman/local/hello-1-1/files": "",
		"var/log/.keep":                        "",
	})
	return root
}

// removeHello runs vzpkg remove's operation on root, package hello.
func removeHello(t *testing.T, root string) error {
	ctx := t.Context()
	c, err := Open(ctx, Ref{Chroot, root})
	if err != nil {
		t.Fatal(err)
	}
	ops, err := c.Ops(ctx, registry, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ops.Close()
	err = ops.Remove(ctx, []string{"hello"})
	if left, _ := rootfs.MountsUnder(root); len(left) > 0 {
		t.Errorf("mounts left: %v", left)
	}
	return err
}

// tree lists the files under dir with their content.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		fmt.Fprintf(&b, "%s %q\n", p, data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestHostileRootList: listing a script packager's container does not read
// the host's files through a link of the root.
func TestHostileRootList(t *testing.T) {
	outside := t.TempDir()
	write(t, outside, map[string]string{"x/desc": "%NAME%\nhost-secret\n%VERSION%\n1\n%ARCH%\nany\n"})
	root := t.TempDir()
	write(t, root, map[string]string{
		RecordFile:               "packager=script:pacman\narch=x86_64\n",
		"var/lib/pacman/local/x": "->" + outside + "/x",
	})
	ctx := t.Context()
	c, err := Open(ctx, Ref{Chroot, root})
	if err != nil {
		t.Fatal(err)
	}
	ops, err := c.Ops(ctx, registry, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ops.Close()
	pkgs, err := ops.Query(ctx)
	if err == nil || !strings.Contains(err.Error(), "/var/lib/pacman/local/x/desc: not a file of the root") {
		t.Errorf("got %v, %v; want an error naming the link out", pkgs, err)
	}
}
