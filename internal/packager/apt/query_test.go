package apt_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vzpkg2/internal/packager/apt"
	"vzpkg2/internal/rootfs/rootfstest"
)

// TestQueryReadsTheDpkgDatabaseAsDpkgQueryDoes copies this machine's dpkg
// status into a root, with a journal entry that removes one package and
// upgrades another, and compares Query with the host's dpkg-query on the
// same database.
func TestQueryReadsTheDpkgDatabaseAsDpkgQueryDoes(t *testing.T) {
	status, err := os.ReadFile("/var/lib/dpkg/status")
	if err != nil {
		t.Fatalf("this test reads the host's dpkg database (Debian): %v", err)
	}
	root := t.TempDir()
	admin := filepath.Join(root, "var/lib/dpkg")
	os.MkdirAll(filepath.Join(admin, "updates"), 0o755)
	os.WriteFile(filepath.Join(admin, "status"), status, 0o644)
	journal := "Package: tar\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1.34+dfsg-1.2\n\n" +
		"Package: vzpkg-journal-test\nStatus: install ok installed\nArchitecture: all\nVersion: 1:2.0-1\nDescription: x\n more\n"
	os.WriteFile(filepath.Join(admin, "updates/0000"), []byte(journal), 0o644)

	got, err := apt.Apt{}.Query(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("dpkg-query", "--admindir="+admin, "-W", "-f", "${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n").Output()
	if err != nil {
		t.Fatalf("dpkg-query: %v", err)
	}
	var want []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Split(l, "\t"); len(f) == 4 && strings.HasPrefix(f[0], "ii") {
			want = append(want, f[1]+" "+f[2]+" "+f[3])
		}
	}
	var have []string
	for _, p := range got {
		have = append(have, p.Name+" "+p.Version+" "+p.Arch)
	}
	if strings.Join(have, "\n") != strings.Join(want, "\n") {
		t.Errorf("Query and dpkg-query differ:\n got %d packages %.300q\nwant %d packages %.300q", len(have), have, len(want), want)
	}
	if len(want) < 10 || !strings.Contains(strings.Join(want, "\n"), "vzpkg-journal-test 1:2.0-1 all") {
		t.Errorf("dpkg-query did not see the database as the test meant: %d packages", len(want))
	}
}

// TestQueryRefusesADpkgDatabaseOutsideTheRoot: a root whose var/lib/dpkg
// leads out of it is not listed with what is there.
func TestQueryRefusesADpkgDatabaseOutsideTheRoot(t *testing.T) {
	for _, kind := range []string{"absolute", "relative"} {
		t.Run(kind, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			rootfstest.Link(t, root, "var/lib/dpkg", "/var/lib/dpkg", kind == "relative")
			pkgs, err := apt.Apt{}.Query(context.Background(), root)
			if err == nil {
				t.Errorf("Query listed %d packages from outside the root: %s", len(pkgs), fmt.Sprint(pkgs[:min(3, len(pkgs))]))
			}
		})
	}
}
