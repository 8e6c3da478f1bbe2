// Package signed checks the OpenPGP signatures of repository metadata
// against configured keyrings, so that pkg-cacher never stores or serves an
// InRelease file its archive did not sign.
package signed

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
)

// Checker holds the trusted keys.
type Checker struct {
	keys openpgp.EntityList
}

// Load reads keyring files, binary (as in /usr/share/keyrings) or ASCII-armored.
func Load(files []string) (*Checker, error) {
	c := &Checker{}
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

// Check verifies the file under key if it is a signed index (InRelease);
// other files pass.
func (c *Checker) Check(key string, r io.Reader) error {
	if path.Base(key) != "InRelease" {
		return nil
	}
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
