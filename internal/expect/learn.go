package expect

import (
	"fmt"
	"io"
	"path"
	"strings"
)

// Learn reads the file under key with open if it is repository metadata, and
// records what it promises: a Release's index files (also under their
// by-hash names), a Packages or Sources index's package files, a repomd.xml's
// repodata files, a primary.xml's RPMs. Other files are not opened.
func (ix *Index) Learn(key string, open func() (io.ReadCloser, error)) error {
	name := ix.kindOf(key)
	var learn func(io.Reader) error
	switch {
	case name == "InRelease" || name == "Release":
		learn = func(r io.Reader) error { return ix.learnRelease(key, r) }
	case isIndex(name, "Packages"):
		learn = func(r io.Reader) error { return ix.learnPackages(key, name, r) }
	case name == "repomd.xml":
		learn = func(r io.Reader) error { return ix.learnRepomd(key, r) }
	case isIndex(name[strings.LastIndexByte(name, '-')+1:], "primary.xml"): // [CHECKSUM-]primary.xml[.gz]
		learn = func(r io.Reader) error { return ix.learnPrimary(key, name, r) }
	default:
		return nil
	}
	f, err := open()
	if err != nil {
		return err
	}
	defer f.Close()
	if err := learn(f); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// isIndex reports whether name is base, possibly compressed.
func isIndex(name, base string) bool {
	ext := strings.TrimPrefix(name, base)
	return strings.HasPrefix(name, base) && (ext == "" || ext == ".gz" || ext == ".xz" || ext == ".bz2" || ext == ".zst")
}

// learnRelease records the index files of dists/SUITE/ under their names and
// their by-hash names.
func (ix *Index) learnRelease(key string, r io.Reader) error {
	files, err := releaseFiles(r)
	if err != nil {
		return err
	}
	dir := path.Dir(key)
	for _, f := range files {
		ix.set(dir+"/"+f.path, f.size, f.sha)
		byHash := dir + "/" + path.Dir(f.path) + "/by-hash/SHA256/" + f.sha
		ix.set(byHash, f.size, f.sha)
		ix.setKind(byHash, f.path)
	}
	return nil
}

// learnPackages records the package files of a Packages index, relative to
// the archive root (the part of the key before /dists/).
func (ix *Index) learnPackages(key, name string, r io.Reader) error {
	i := strings.LastIndex(key, "/dists/")
	if i < 0 {
		return nil // not in an archive layout: nothing to anchor the file names to
	}
	root := key[:i]
	body, err := decompress(name, r)
	if err != nil {
		return err
	}
	defer body.Close()
	return packagesFiles(body, func(f file) { ix.set(root+"/"+f.path, f.size, f.sha) })
}

// learnRepomd records the repodata files of a yum repository, and which of
// them is the primary index.
func (ix *Index) learnRepomd(key string, r io.Reader) error {
	base, ok := strings.CutSuffix(key, "/repodata/repomd.xml")
	if !ok {
		return nil
	}
	files, primary, err := repomdFiles(r)
	if err != nil {
		return err
	}
	for _, f := range files {
		ix.set(base+"/"+f.path, f.size, f.sha)
		if f.path == primary {
			ix.setKind(base+"/"+f.path, path.Base(primary))
		}
	}
	return nil
}

// learnPrimary records the RPMs of a primary.xml.
func (ix *Index) learnPrimary(key, name string, r io.Reader) error {
	i := strings.LastIndex(key, "/repodata/")
	if i < 0 {
		return nil
	}
	base := key[:i]
	body, err := decompress(name, r)
	if err != nil {
		return err
	}
	defer body.Close()
	return primaryFiles(body, func(f file) { ix.set(base+"/"+f.path, f.size, f.sha) })
}
