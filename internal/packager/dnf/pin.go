package dnf

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// A template pins the keys a key URL may give with a fragment:
// KEY#fingerprint=HEX[,HEX...], each the primary key's v4 (40 hex digits)
// or v6 (64) fingerprint. A key fetched through a pkg-cacher on another
// machine travels plain HTTP on the way, so whoever sits between could give
// a key of their own and sign packages with it: a pinned key file holding
// any other key is refused.
const pinPrefix = "fingerprint="

// pinned splits the key k into what to fetch and the fingerprints pinned
// (nil when none are).
func pinned(k string) (string, []string, error) {
	base, frag, ok := strings.Cut(k, "#")
	if !ok {
		return k, nil, nil
	}
	list, ok := strings.CutPrefix(frag, pinPrefix)
	if !ok {
		return "", nil, fmt.Errorf("key %s: a key URL's only fragment is #%sHEX[,HEX...]", k, pinPrefix)
	}
	var fps []string
	for _, fp := range strings.Split(list, ",") {
		fp = strings.ToUpper(fp)
		if _, err := hex.DecodeString(fp); err != nil || len(fp) != 40 && len(fp) != 64 {
			return "", nil, fmt.Errorf("key %s: %q is not a key fingerprint (40 or 64 hex digits)", k, fp)
		}
		fps = append(fps, fp)
	}
	return base, fps, nil
}

// checkPinned refuses the key file data of k unless every key in it (in
// every armored block: rpm imports them all) is one of fps, or a subkey
// one of them bound. Every key and subkey packet is counted, read or not:
// go-crypto skips a key or subkey whose self-signature does not verify, and
// rpm may import it all the same.
func checkPinned(k string, data []byte, fps []string) error {
	const begin = "-----BEGIN PGP "
	blocks := bytes.Split(data, []byte(begin))[1:] // what comes before the first is not a key
	if len(blocks) == 0 {
		return fmt.Errorf("key %s holds no key", k)
	}
	for _, b := range blocks {
		block, err := armor.Decode(bytes.NewReader(append([]byte(begin), b...)))
		if err != nil {
			return fmt.Errorf("key %s: %w", k, err)
		}
		if block.Type != openpgp.PublicKeyType {
			return fmt.Errorf("key %s holds a %s, not only public keys", k, block.Type)
		}
		body, err := io.ReadAll(block.Body)
		if err != nil {
			return fmt.Errorf("key %s: %w", k, err)
		}
		primaries, subkeys, err := countKeyPackets(body)
		if err != nil {
			return fmt.Errorf("key %s: %w", k, err)
		}
		keys, err := openpgp.ReadKeyRing(bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("key %s: %w", k, err)
		}
		bound := 0
		for _, e := range keys {
			fp := strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint))
			if !slices.Contains(fps, fp) {
				return fmt.Errorf("key %s holds the key %s, which the template does not pin: refused (it may not be the distribution's; if the distribution changed its key, check the new one and pin it)", k, fp)
			}
			bound += len(e.Subkeys)
		}
		if len(keys) != primaries || bound != subkeys {
			return fmt.Errorf("key %s holds %d keys and %d subkeys, of which only %d and %d verify: refused (keys or subkeys that do not verify may be imported by rpm all the same)", k, primaries, subkeys, len(keys), bound)
		}
	}
	return nil
}

// countKeyPackets counts the public key and subkey packets in body, each
// packet read as bytes only.
func countKeyPackets(body []byte) (primaries, subkeys int, err error) {
	r := packet.NewOpaqueReader(bytes.NewReader(body))
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			return primaries, subkeys, nil
		}
		if err != nil {
			return 0, 0, err
		}
		switch p.Tag {
		case packetPublicKey:
			primaries++
		case packetPublicSubkey:
			subkeys++
		case packetSecretKey, packetSecretSubkey:
			return 0, 0, errors.New("a secret key in a public key block")
		}
	}
}

// OpenPGP packet tags (RFC 9580, section 5).
const (
	packetSecretKey    = 5
	packetPublicKey    = 6
	packetSecretSubkey = 7
	packetPublicSubkey = 14
)
