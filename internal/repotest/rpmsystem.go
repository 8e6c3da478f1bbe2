package repotest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// RPMSigner signs packages with a key generated for the purpose.
type RPMSigner struct {
	home string // GNUPGHOME holding the key
	// Key is the ASCII-armoured public key.
	Key []byte
}

// NewRPMSigner generates a signing key (RSA, which every rpm verifies).
func NewRPMSigner(t testing.TB) *RPMSigner {
	t.Helper()
	home, gpg := gpgHome(t)
	gpg("--quick-gen-key", "repotest <repotest@example.invalid>", "rsa2048", "sign", "never")
	return &RPMSigner{home: home, Key: gpg("--armor", "--export")}
}

// BuildSignedRPMRepo builds a repository as BuildRPMRepo does, with every
// package signed by rpmsign with s's key, which it writes to
// Root/RPM-GPG-KEY-repotest (RPMRepo.Key). Building again into the same
// root adds packages (a newer version, say) and indexes them all.
// It requires rpm (rpmbuild, rpmsign), createrepo-c and gnupg.
func BuildSignedRPMRepo(t testing.TB, root string, rpms []RPM, s *RPMSigner) RPMRepo {
	t.Helper()
	repo := RPMRepo{Root: root, RPMs: make(map[string]string), Key: filepath.Join(root, "RPM-GPG-KEY-repotest")}
	stage := t.TempDir()
	var files []string
	for i, p := range rpms {
		rel := buildRPM(t, filepath.Join(stage, "rpm"+strconv.Itoa(i)), root, p)
		repo.RPMs[p.Name] = rel
		files = append(files, filepath.Join(root, filepath.FromSlash(rel)))
	}
	writeFile(t, repo.Key, s.Key, 0o644)
	args := append([]string{"--addsign", "--define", "_gpg_name repotest", "--define", "_gpg_path " + s.home, "--define", "__gpg " + gpgPath(t)}, files...)
	command(t, "", []string{"GNUPGHOME=" + s.home, "HOME=" + stage}, nil, "rpmsign", args...)
	command(t, "", nil, nil, "createrepo_c", "--quiet", root)
	return repo
}

// gpgHome makes a GnuPG home for the test and returns it with a function
// that runs gpg in it (batch mode, no passphrase) and returns its output.
func gpgHome(t testing.TB) (string, func(args ...string) []byte) {
	t.Helper()
	// gpg-agent's socket path must stay short, so GNUPGHOME is not under
	// t.TempDir, whose name includes the test's.
	home, err := os.MkdirTemp("", "repotest-gpg")
	if err != nil {
		t.Fatalf("create GNUPGHOME: %v", err)
	}
	env := []string{"GNUPGHOME=" + home}
	t.Cleanup(func() {
		// gpg started an agent for this home; do not leave it running.
		kill := exec.Command("gpgconf", "--kill", "gpg-agent")
		kill.Env = append(cleanEnv(), env...)
		if out, err := kill.CombinedOutput(); err != nil {
			t.Errorf("gpgconf --kill gpg-agent: %v\n%s", err, out)
		}
		if err := os.RemoveAll(home); err != nil {
			t.Errorf("remove GNUPGHOME: %v", err)
		}
	})
	return home, func(args ...string) []byte {
		t.Helper()
		args = append([]string{"--batch", "--no-tty", "--yes", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)
		return command(t, "", env, nil, "gpg", args...)
	}
}

// HostProgram returns the files a package needs to carry the host's
// program prog (an absolute path) and the shared libraries ldd lists for
// it, each at its real path, and the symbolic links at the usr-merged
// paths the program asks for (its ELF interpreter, say).
func HostProgram(t testing.TB, prog string) (files, links map[string]string) {
	t.Helper()
	files, links = map[string]string{}, map[string]string{}
	paths := []string{prog}
	for _, l := range strings.Split(string(command(t, "", nil, nil, "ldd", prog)), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			paths = append(paths, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			paths = append(paths, f[0])
		}
	}
	for _, p := range paths {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Fatalf("HostProgram %s: %v", prog, err)
		}
		files[real] = real
		merged := p
		for _, dir := range []string{"/bin/", "/sbin/", "/lib/", "/lib64/"} {
			if strings.HasPrefix(p, dir) {
				merged = "/usr" + p
			}
		}
		if merged != real {
			links[merged] = real
		}
	}
	return files, links
}

// SystemRPMs returns a small RPM distribution made of the host's own
// binaries, for a root that runs a shell:
//
//   - vz-filesystem: the directory tree (usr-merged), /etc/os-release and a
//     repository file of its own in /etc/yum.repos.d;
//   - vz-libc: the C library and dynamic loader dash needs;
//   - vz-dash: /usr/bin/dash and /usr/bin/sh, providing /bin/sh;
//   - vz-motd (motdVersion): /etc/motd saying its version, and a %post
//     scriptlet (run by vz-dash) writing /etc/vz-motd.post; it needs
//     kernel-core, which only a dummy package provides;
//   - vz-extra: a package nothing needs, to install later.
//
// The packages depend on each other in that order. The libraries and the
// shell are the host's architecture.
func SystemRPMs(t testing.TB, motdVersion string) []RPM {
	t.Helper()
	arch := strings.TrimSpace(string(command(t, "", nil, nil, "uname", "-m")))
	dashFiles, dashLinks := HostProgram(t, "/usr/bin/dash")
	libc := RPM{Name: "vz-libc", Version: "2.36", Release: "1", Arch: arch, Requires: []string{"vz-filesystem"},
		Files: map[string]string{}, Symlinks: dashLinks}
	dash := RPM{Name: "vz-dash", Version: "0.5.12", Release: "1", Arch: arch, Requires: []string{"vz-libc"},
		Provides: []string{"/bin/sh"}, Files: map[string]string{}, Symlinks: map[string]string{"/usr/bin/sh": "dash"}}
	for dst, src := range dashFiles {
		if strings.HasSuffix(dst, "/dash") {
			dash.Files["/usr/bin/dash"] = src
		} else {
			libc.Files[dst] = src
		}
	}
	delete(libc.Symlinks, "/usr/bin/dash")
	return []RPM{
		{Name: "vz-filesystem", Version: "1.0", Release: "1",
			Dirs: []string{"/dev", "/etc", "/etc/yum.repos.d", "/proc", "/root", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib",
				"/usr/lib64", "/usr/sbin", "/usr/share", "/var", "/var/cache", "/var/lib", "/var/log", "/var/tmp"},
			Symlinks: map[string]string{"/bin": "usr/bin", "/sbin": "usr/sbin", "/lib": "usr/lib", "/lib64": "usr/lib64"},
			Text: map[string]string{
				"/etc/os-release":              "NAME=\"vz test\"\nID=vztest\nVERSION_ID=1\n",
				"/etc/yum.repos.d/vztest.repo": "[vztest]\nname=vz test\nbaseurl=http://vztest.invalid/$releasever/\ngpgcheck=1\n",
			}},
		libc,
		dash,
		{Name: "vz-motd", Version: motdVersion, Release: "1", Requires: []string{"vz-filesystem", "/bin/sh", "kernel-core >= 5"},
			Text: map[string]string{"/etc/motd": "vz-motd " + motdVersion + "\n"},
			Post: "echo \"post of $1 ran\" > /etc/vz-motd.post"},
		{Name: "vz-extra", Version: "1.0", Release: "1", Requires: []string{"vz-filesystem"}, Size: 4096},
	}
}

// gpgPath is gpg's path, for rpm's %__gpg (Debian's rpm names gpg2).
func gpgPath(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("gpg")
	if err != nil {
		t.Fatalf("gnupg is not installed: %v", err)
	}
	return p
}

// RPMMirror is a signed RPM repository served on loopback: release "1"
// of its directory holds SystemRPMs(t, "1.0").
type RPMMirror struct {
	Dir    string // the served directory; releases are directories in it
	Signer *RPMSigner
	Up     *Upstream
}

// NewRPMMirror builds an RPMMirror and serves it until t ends.
func NewRPMMirror(t testing.TB) *RPMMirror {
	t.Helper()
	m := &RPMMirror{Dir: t.TempDir(), Signer: NewRPMSigner(t)}
	m.Publish(t, "1", SystemRPMs(t, "1.0"))
	m.Up = NewUpstream(t, m.Dir)
	return m
}

// Publish adds rpms to the release and indexes it again.
func (m *RPMMirror) Publish(t testing.TB, release string, rpms []RPM) {
	t.Helper()
	BuildSignedRPMRepo(t, filepath.Join(m.Dir, release), rpms, m.Signer)
}
