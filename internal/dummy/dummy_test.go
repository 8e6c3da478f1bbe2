package dummy

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"vzpkg2/internal/tmpl"
)

func TestDebIsInstallableAndProvides(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	dir := t.TempDir()
	d := tmpl.Dummy{Name: "initramfs-tools", Version: "99:1.0-vz1", Provides: []string{"linux-initramfs-tool"}}
	path, err := Deb(context.Background(), dir, d)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("dpkg-deb", "--field", path, "Package", "Version", "Provides", "Architecture").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Package: initramfs-tools", "Version: 99:1.0-vz1", "Provides: linux-initramfs-tool", "Architecture: all"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("control has no %q:\n%s", want, out)
		}
	}
	// A real dpkg installs it into an empty database, and it satisfies a dependency on what it provides.
	admin := t.TempDir()
	os.WriteFile(admin+"/status", nil, 0o644)
	os.MkdirAll(admin+"/info", 0o755)
	os.MkdirAll(admin+"/updates", 0o755)
	root := t.TempDir()
	cmd := exec.Command("dpkg", "--root="+root, "--admindir="+admin, "--force-not-root", "--force-script-chrootless", "-i", path)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, msg)
	}
	status, _ := os.ReadFile(admin + "/status")
	if !bytes.Contains(status, []byte("Status: install ok installed")) || !bytes.Contains(status, []byte("Provides: linux-initramfs-tool")) {
		t.Errorf("dpkg status after install:\n%s", status)
	}

	again, err := Deb(context.Background(), t.TempDir(), d)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(path)
	b, _ := os.ReadFile(again)
	if !bytes.Equal(a, b) {
		t.Error("two builds with the same SOURCE_DATE_EPOCH differ")
	}
}

func TestDebRejectsIncompleteDummy(t *testing.T) {
	if _, err := Deb(context.Background(), t.TempDir(), tmpl.Dummy{Name: "udev"}); err == nil {
		t.Fatal("a dummy without a version was built")
	}
}

func TestRPMIsInstallableAndProvides(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	d := tmpl.Dummy{Name: "kernel", Version: "99:1.0-vz1", Provides: []string{"kernel-core", "kernel-modules"}}
	path, err := RPM(context.Background(), t.TempDir(), d)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("rpm", "-qp", "--qf", "%{NAME} %{EPOCH}:%{VERSION}-%{RELEASE} %{ARCH}\n[%{PROVIDES} %{PROVIDEFLAGS:depflags} %{PROVIDEVERSION}\n]", path).CombinedOutput()
	if err != nil {
		t.Fatalf("rpm -qp: %v\n%s", err, out)
	}
	for _, want := range []string{"kernel 99:1.0-vz1 noarch\n", "kernel-core = 99:1.0-vz1\n", "kernel-modules = 99:1.0-vz1\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("rpm -qp has no %q:\n%s", want, out)
		}
	}
	// A real rpm installs it with a package that needs what it provides, at a version.
	root, spec := t.TempDir(), t.TempDir()
	needs := `Name: needs-kernel
Version: 1
Release: 1
Summary: needs a kernel
License: MIT
BuildArch: noarch
Requires: kernel-core >= 5.14

%description
x

%files
`
	os.WriteFile(spec+"/n.spec", []byte(needs), 0o644)
	if msg, err := exec.Command("rpmbuild", "--quiet", "-bb", "--define", "_topdir "+spec, spec+"/n.spec").CombinedOutput(); err != nil {
		t.Fatalf("rpmbuild: %v\n%s", err, msg)
	}
	install := exec.Command("rpm", "--root", root, "--dbpath", "/var/lib/rpm", "-i", "--nodeps", "--noscripts", path)
	if msg, err := install.CombinedOutput(); err != nil {
		t.Fatalf("rpm -i %s: %v\n%s", path, err, msg)
	}
	install = exec.Command("rpm", "--root", root, "--dbpath", "/var/lib/rpm", "-i", "--noscripts", spec+"/RPMS/noarch/needs-kernel-1-1.noarch.rpm")
	if msg, err := install.CombinedOutput(); err != nil {
		t.Errorf("the dummy does not satisfy kernel-core >= 5.14: %v\n%s", err, msg)
	}
	if _, err := os.Stat(root + "/usr/share/doc/kernel/README.vzpkg"); err != nil {
		t.Errorf("the dummy's README is not installed: %v", err)
	}

	again, err := RPM(context.Background(), t.TempDir(), d)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(path)
	b, _ := os.ReadFile(again)
	if !bytes.Equal(a, b) {
		t.Error("two builds with the same SOURCE_DATE_EPOCH differ")
	}
}

func TestRPMRejectsBadVersions(t *testing.T) {
	for _, v := range []string{"", "x:1.0", "1.0-", "1.0\nRequires: evil", "%{evil}"} {
		if _, err := RPM(context.Background(), t.TempDir(), tmpl.Dummy{Name: "udev", Version: v}); err == nil {
			t.Errorf("a dummy with version %q was built", v)
		}
	}
	if _, err := RPM(context.Background(), t.TempDir(), tmpl.Dummy{Name: "udev", Version: "1", Provides: []string{"a\nRequires: b"}}); err == nil {
		t.Error("a dummy providing a name with a newline was built")
	}
}
