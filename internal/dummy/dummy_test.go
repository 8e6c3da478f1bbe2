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
