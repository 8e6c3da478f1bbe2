package container

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"vzpkg2/internal/keyvalue"
	"vzpkg2/internal/packager"
	"vzpkg2/internal/rootfs"
)

// RecordFile is where a template built by vzpkg names its packager, in the
// template's root: key=value lines (packager, template, arch, archname,
// suite, releasever). It tells the verbs run in a container of the template
// which backend drives it and the release its repositories are for.
const RecordFile = "etc/vzpkg/packager"

// recordHeader starts the record.
const recordHeader = "# Written by vzpkg when it built this template: the packager vzpkg drives in\n# containers made from it (vzpkg install, remove, update, list).\n"

// Record is what RecordFile holds.
type Record struct {
	Packager   string // a packager name of the registry: "apt", "dnf", "script:NAME"
	Template   string
	Arch       string
	ArchName   string
	Suite      string
	Releasever string
}

// WriteRecord writes the record of a template built by packager name from
// spec into root, through an os.Root.
func WriteRecord(root, name string, spec *packager.Spec) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.MkdirAll("etc/vzpkg", 0o755); err != nil {
		return rootfs.Explain(root, err)
	}
	var b strings.Builder
	b.WriteString(recordHeader)
	for _, kv := range [][2]string{{"packager", name}, {"template", spec.Name}, {"arch", spec.Arch}, {"archname", spec.ArchName},
		{"suite", spec.Suite}, {"releasever", spec.Releasever}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, "%s=%s\n", kv[0], kv[1])
		}
	}
	return rootfs.Explain(root, rootfs.WriteFile(r, RecordFile, []byte(b.String()), 0o644))
}

// parseRecord reads a record; unknown keys are ignored (a newer vzpkg may
// write more).
func parseRecord(data string) (Record, error) {
	var rec Record
	err := keyvalue.Parse("/"+RecordFile, strings.NewReader(data), func(k, v string) error {
		switch k {
		case "packager":
			rec.Packager = v
		case "template":
			rec.Template = v
		case "arch":
			rec.Arch = v
		case "archname":
			rec.ArchName = v
		case "suite":
			rec.Suite = v
		case "releasever":
			rec.Releasever = v
		}
		return nil
	}, nil)
	if err != nil {
		return rec, err
	}
	if rec.Packager == "" {
		return rec, fmt.Errorf("/%s names no packager", RecordFile)
	}
	return rec, nil
}

// readRecord returns the root's record, or, when it has none, one with the
// packager its package database shows: a dpkg status file is apt's, an rpm
// database dnf's.
func readRecord(r *os.Root) (Record, error) {
	data, err := r.ReadFile(RecordFile)
	if err == nil {
		return parseRecord(string(data))
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return Record{}, err
	}
	if fi, err := r.Stat("var/lib/dpkg/status"); err == nil && fi.Mode().IsRegular() {
		return Record{Packager: "apt"}, nil
	}
	for _, db := range []string{"var/lib/rpm", "usr/lib/sysimage/rpm"} {
		for _, f := range []string{"rpmdb.sqlite", "Packages", "Packages.db"} {
			if fi, err := r.Stat(db + "/" + f); err == nil && fi.Mode().IsRegular() {
				return Record{Packager: "dnf"}, nil
			}
		}
	}
	return Record{}, errors.New("no /" + RecordFile + ", no dpkg status and no rpm database: not a container vzpkg knows the packager of")
}
