package expect

import (
	"fmt"
	"io"
	"path"
	"strings"

	"vzpkg2/internal/cachekey"
	"vzpkg2/internal/repofmt"
)

// Learn reads the file under key with open if it is repository metadata, and
// records what it promises: a Release's index files (also under their
// by-hash names), a Packages or Sources index's package files, a repomd.xml's
// repodata files, a primary.xml's RPMs. Other files are not opened.
func (ix *Index) Learn(key string, open func() (io.ReadCloser, error)) error {
	learn := ix.learner(key)
	if learn == nil {
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

// LearnAs is Learn for the file under key read as the index called name
// (e.g. "Packages.xz"): for a by-hash file whose Release is gone.
func (ix *Index) LearnAs(key, name string, open func() (io.ReadCloser, error)) error {
	ix.setKind(key, name)
	return ix.Learn(key, open)
}

// IsIndex reports whether the file under key is metadata that lists other
// files: what Learn reads.
func (ix *Index) IsIndex(key string) bool { return ix.learner(key) != nil }

// learner returns what learns from the file under key, or nil when it lists
// nothing.
func (ix *Index) learner(key string) func(io.Reader) error {
	name := ix.kindOf(key)
	switch {
	case name == "InRelease" || name == "Release":
		return func(r io.Reader) error { return ix.learnRelease(key, r) }
	case isIndex(name, "Packages") || isIndex(name, "Sources"):
		return func(r io.Reader) error { return ix.learnPackages(key, name, r) }
	case name == "repomd.xml":
		return func(r io.Reader) error { return ix.learnRepomd(key, r) }
	case isIndex(name[strings.LastIndexByte(name, '-')+1:], "primary.xml"): // [CHECKSUM-]primary.xml[.gz]
		return func(r io.Reader) error { return ix.learnPrimary(key, name, r) }
	}
	return nil
}

// isIndex reports whether name is base, possibly compressed.
func isIndex(name, base string) bool {
	ext := strings.TrimPrefix(name, base)
	return strings.HasPrefix(name, base) && (ext == "" || ext == ".gz" || ext == ".xz" || ext == ".bz2" || ext == ".zst")
}

// releaseFiles are the files of dists/SUITE/ that a Release cannot vouch for.
var releaseFiles = map[string]bool{"Release": true, "InRelease": true, "Release.gpg": true}

// learnRelease records the index files of dists/SUITE/ under their names and
// their by-hash names.
func (ix *Index) learnRelease(key string, r io.Reader) error {
	rel, err := repofmt.ParseRelease(r)
	if err != nil {
		return err
	}
	dir := cachekey.Dir(key)
	for p, c := range rel.Files() {
		// A Release listing itself (or its signature) would pin the next
		// Release to this one's checksum forever.
		if c.SHA256 == "" || !repofmt.CleanPath(p) || releaseFiles[p] {
			continue
		}
		ix.set(cachekey.Join(dir, p), c.Size, c.SHA256)
		byHash := cachekey.Join(dir, path.Dir(p)+"/by-hash/SHA256/"+c.SHA256)
		ix.set(byHash, c.Size, c.SHA256)
		ix.setKind(byHash, p)
	}
	return nil
}

// learnPackages records the files of a Packages or Sources index, relative
// to the archive root (the part of the key before /dists/).
func (ix *Index) learnPackages(key, name string, r io.Reader) error {
	i := strings.LastIndex(key, "/dists/")
	if i < 0 {
		return nil // not in an archive layout: nothing to anchor the file names to
	}
	root := key[:i]
	body, err := repofmt.Decompress(name, r)
	if err != nil {
		return err
	}
	defer body.Close()
	return repofmt.ParsePackages(body, func(e repofmt.Entry) error {
		if e.SHA256 != "" && repofmt.CleanPath(e.Path) {
			ix.set(cachekey.Join(root, e.Path), e.Size, e.SHA256)
		}
		return nil
	})
}

// learnRepomd records the repodata files of a yum repository, and which of
// them is the primary index.
func (ix *Index) learnRepomd(key string, r io.Reader) error {
	base, ok := strings.CutSuffix(key, "/repodata/repomd.xml")
	if !ok {
		return nil
	}
	md, err := repofmt.ParseRepomd(r)
	if err != nil {
		return err
	}
	for _, d := range md.Data {
		if d.Checksum.Type != "sha256" || d.Base != "" || !repofmt.CleanPath(d.Href) {
			continue
		}
		ix.set(cachekey.Join(base, d.Href), d.Size, d.Checksum.Value)
		if d.Type == "primary" {
			ix.setKind(cachekey.Join(base, d.Href), path.Base(d.Href))
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
	body, err := repofmt.Decompress(name, r)
	if err != nil {
		return err
	}
	defer body.Close()
	return repofmt.ParsePrimary(body, func(e repofmt.RPMEntry) error {
		// A location with its own xml:base lives elsewhere: nothing to anchor it to.
		if e.Checksum.Type == "sha256" && e.Base == "" && repofmt.CleanPath(e.Href) {
			ix.set(cachekey.Join(base, e.Href), e.Size, e.Checksum.Value)
		}
		return nil
	})
}
