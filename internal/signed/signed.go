// Package signed checks the OpenPGP signatures of repository metadata
// against configured keyrings, so that pkg-cacher never stores or serves an
// InRelease file its archive did not sign.
package signed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"

	"vzpkg2/internal/cachekey"
	"vzpkg2/internal/store"
)

// Files is where the files a detached signature signs are: the cache's store.
type Files interface {
	Open(ctx context.Context, key string) (store.Object, error)
	Delete(ctx context.Context, key string) error
}

// Checker holds the trusted keys.
type Checker struct {
	keys  openpgp.EntityList
	files Files
}

// Load reads keyring files, binary (as in /usr/share/keyrings) or
// ASCII-armored. Detached signatures are checked against the signed files
// in files.
func Load(files []string, signed Files) (*Checker, error) {
	c := &Checker{files: signed}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var keys openpgp.EntityList
		if bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN PGP")) {
			keys, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
		} else {
			keys, err = openpgp.ReadKeyRing(bytes.NewReader(data))
		}
		if err != nil {
			return nil, fmt.Errorf("keyring %s: %w", f, err)
		}
		if len(keys) == 0 {
			return nil, fmt.Errorf("keyring %s holds no key", f)
		}
		c.keys = append(c.keys, keys...)
	}
	return c, nil
}

// ErrBadSignature is returned (wrapped) for metadata not signed by a trusted key.
var ErrBadSignature = errors.New("not signed by a trusted key")

// detached maps the name of a detached signature to the file it signs.
var detached = map[string]string{
	"Release.gpg":    "Release",    // apt, beside InRelease
	"repomd.xml.asc": "repomd.xml", // yum/dnf with repo_gpgcheck
}

// Check verifies the file under key if it is signed metadata: InRelease
// (clearsigned), or Release.gpg and repomd.xml.asc against the Release and
// repomd.xml stored beside them. Other files pass. When a detached
// signature fails, the file it was to vouch for is removed from the store.
func (c *Checker) Check(key string, r io.Reader) error {
	base := path.Base(key)
	if base == "InRelease" {
		return c.checkClearsigned(key, r)
	}
	data, ok := detached[base]
	if !ok {
		return nil
	}
	dataKey := cachekey.Dir(key) + "/" + data
	sig, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ctx := context.Background()
	f, err := c.files.Open(ctx, dataKey)
	if err != nil {
		return fmt.Errorf("%s: the signed %s is not cached: %w", key, data, ErrBadSignature)
	}
	check := openpgp.CheckDetachedSignature
	if bytes.HasPrefix(bytes.TrimSpace(sig), []byte("-----BEGIN PGP")) {
		check = openpgp.CheckArmoredDetachedSignature
	}
	_, err = check(c.keys, f, bytes.NewReader(sig), nil)
	f.Close()
	if err != nil {
		c.files.Delete(ctx, dataKey)
		return fmt.Errorf("%s: %v: %w", key, err, ErrBadSignature)
	}
	return nil
}

func (c *Checker) checkClearsigned(key string, r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	block, _ := clearsign.Decode(data)
	if block == nil {
		return fmt.Errorf("%s is not a clearsigned file: %w", key, ErrBadSignature)
	}
	if _, err := block.VerifySignature(c.keys, nil); err != nil {
		return fmt.Errorf("%s: %v: %w", key, err, ErrBadSignature)
	}
	return nil
}
