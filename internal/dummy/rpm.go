package dummy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"vzpkg2/internal/tmpl"
)

// rpmField is what an RPM name, version, release or provided name may hold
// here: nothing that would end a spec file line or start a macro.
var rpmField = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._+~^()/-]*$`)

// RPM writes the dummy package d as a noarch .rpm into dir with rpmbuild
// and returns its path. d.Version is [EPOCH:]VERSION[-RELEASE] (the release
// is "1" when absent). The package holds only a README in its
// documentation directory, runs no scriptlet, and provides each of
// d.Provides at its own epoch, version and release, so that a versioned
// dependency ("kernel-core >= 5.14") is satisfied too. With
// SOURCE_DATE_EPOCH set in the environment the file is byte-for-byte
// reproducible: build time, file times and build host are fixed.
func RPM(ctx context.Context, dir string, d tmpl.Dummy) (string, error) {
	epoch, version, release, err := splitRPMVersion(d.Version)
	if err != nil || d.Name == "" || !rpmField.MatchString(d.Name) {
		return "", fmt.Errorf("dummy package %q %q: want a name and [EPOCH:]VERSION[-RELEASE] of letters, digits and ._+~^ (%v)", d.Name, d.Version, err)
	}
	evr := version + "-" + release
	if epoch != "" {
		evr = epoch + ":" + evr
	}
	var spec strings.Builder
	fmt.Fprintf(&spec, "Name: %s\nVersion: %s\nRelease: %s\n", d.Name, version, release)
	if epoch != "" {
		fmt.Fprintf(&spec, "Epoch: %s\n", epoch)
	}
	fmt.Fprintf(&spec, "Summary: empty stand-in for %s in a container template\nLicense: Public Domain\nBuildArch: noarch\nAutoReqProv: no\n", d.Name)
	for _, p := range d.Provides {
		if !rpmField.MatchString(p) {
			return "", fmt.Errorf("dummy package %s: provided name %q: want letters, digits and ._+~^()/-", d.Name, p)
		}
		fmt.Fprintf(&spec, "Provides: %s = %s\n", p, evr)
	}
	fmt.Fprintf(&spec, "\n%%description\nInstalled by vzpkg so that packages depending on %s install without it;\na container does not need it. Removing it may pull in the real package.\n", d.Name)
	fmt.Fprintf(&spec, "\n%%install\nmkdir -p %%{buildroot}/usr/share/doc/%s\n", d.Name)
	fmt.Fprintf(&spec, "printf 'This is an empty package installed by vzpkg in place of %s,\\nwhich a container does not need. Removing it may pull in the real package.\\n' > %%{buildroot}/usr/share/doc/%s/README.vzpkg\n", d.Name, d.Name)
	fmt.Fprintf(&spec, "\n%%files\n%%dir /usr/share/doc/%s\n/usr/share/doc/%s/README.vzpkg\n", d.Name, d.Name)

	top, err := os.MkdirTemp(dir, d.Name+".rpmbuild-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(top)
	specFile := filepath.Join(top, d.Name+".spec")
	if err := os.WriteFile(specFile, []byte(spec.String()), 0o644); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "rpmbuild", "--quiet", "-bb",
		"--define", "_topdir "+top,
		"--define", "_tmppath "+top,
		"--define", "_build_id_links none",
		"--define", "_buildhost vzpkg",
		"--define", "__os_install_post %{nil}",
		"--define", "use_source_date_epoch_as_buildtime 1",
		"--define", "clamp_mtime_to_source_date_epoch 1",
		specFile)
	// Nothing of the caller's rpm configuration (~/.rpmmacros) or locale.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + top, "LC_ALL=C"}
	if sde, ok := os.LookupEnv("SOURCE_DATE_EPOCH"); ok {
		cmd.Env = append(cmd.Env, "SOURCE_DATE_EPOCH="+sde)
	}
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build dummy package %s: rpmbuild: %w: %s", d.Name, err, strings.TrimSpace(string(msg)))
	}
	name := d.Name + "-" + version + "-" + release + ".noarch.rpm"
	out := filepath.Join(dir, name)
	if err := os.Rename(filepath.Join(top, "RPMS", "noarch", name), out); err != nil {
		return "", fmt.Errorf("build dummy package %s: %w", d.Name, err)
	}
	return out, nil
}

// splitRPMVersion splits [EPOCH:]VERSION[-RELEASE]; the release is "1"
// when absent.
func splitRPMVersion(v string) (epoch, version, release string, err error) {
	if e, rest, ok := strings.Cut(v, ":"); ok {
		if strings.Trim(e, "0123456789") != "" || e == "" {
			return "", "", "", fmt.Errorf("epoch %q is not a number", e)
		}
		epoch, v = e, rest
	}
	version, release = v, "1"
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		version, release = v[:i], v[i+1:]
	}
	for _, f := range []string{version, release} {
		if f == "" || strings.ContainsAny(f, "-()/") || !rpmField.MatchString(f) {
			return "", "", "", fmt.Errorf("%q is not an rpm version-release", v)
		}
	}
	return epoch, version, release, nil
}
