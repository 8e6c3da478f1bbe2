package dnf

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"vzpkg2/internal/packager"
	"vzpkg2/internal/repotest"
)

// fingerprint is gpg's fingerprint of the armored key: the test's own
// reading, not pin.go's.
func fingerprint(t *testing.T, key []byte) string {
	t.Helper()
	cmd := exec.Command("gpg", "--show-keys", "--with-colons")
	cmd.Env = append(os.Environ(), "GNUPGHOME="+t.TempDir())
	cmd.Stdin = strings.NewReader(string(key))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gpg --show-keys: %v", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Split(l, ":"); f[0] == "fpr" && len(f) > 9 {
			return f[9]
		}
	}
	t.Fatalf("gpg showed no fingerprint:\n%s", out)
	return ""
}

// A key URL pinned with #fingerprint= gives its key only when the key file
// holds that key and no other.
func TestPinnedKeys(t *testing.T) {
	distro, intruder := repotest.NewRPMSigner(t), repotest.NewRPMSigner(t)
	fp, other := fingerprint(t, distro.Key), fingerprint(t, intruder.Key)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "KEY"), distro.Key, 0o644)
	os.WriteFile(filepath.Join(dir, "SWAPPED"), intruder.Key, 0o644)
	os.WriteFile(filepath.Join(dir, "APPENDED"), append(append([]byte{}, distro.Key...), intruder.Key...), 0o644)
	// One block holding the pinned key and the intruder's without its
	// self-signature, then with its key as a subkey no signature binds:
	// go-crypto skips both, rpm may import them.
	os.WriteFile(filepath.Join(dir, "UNSIGNED"), sameBlock(t, distro.Key, intruder.Key, false), 0o644)
	os.WriteFile(filepath.Join(dir, "SUBKEY"), sameBlock(t, distro.Key, intruder.Key, true), 0o644)
	up := repotest.NewUpstream(t, dir)
	s := &session{dir: t.TempDir()}
	os.Mkdir(filepath.Join(s.dir, "keys"), 0o700)

	for _, tc := range []struct {
		name, key, wantErr string
	}{
		{"not pinned", up.URL() + "/KEY", ""},
		{"pinned", up.URL() + "/KEY#fingerprint=" + fp, ""},
		{"pinned in lower case, among others", up.URL() + "/KEY#fingerprint=" + other + "," + strings.ToLower(fp), ""},
		{"pinned file", "file://" + filepath.Join(dir, "KEY") + "#fingerprint=" + fp, ""},
		{"another key", up.URL() + "/SWAPPED#fingerprint=" + fp, "does not pin"},
		{"another key appended", up.URL() + "/APPENDED#fingerprint=" + fp, other},
		{"unsigned key in the same block", up.URL() + "/UNSIGNED#fingerprint=" + fp, "do not verify"},
		{"unbound subkey in the same block", up.URL() + "/SUBKEY#fingerprint=" + fp, "subkey"},
		{"not a fingerprint", up.URL() + "/KEY#fingerprint=" + fp[:20], "not a key fingerprint"},
		{"another fragment", up.URL() + "/KEY#sha256=00", "only fragment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := s.fetchKey(context.Background(), tc.key, 0)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("fetchKey: %v", err)
				}
				if got, _ := os.ReadFile(p); string(got) != string(distro.Key) {
					t.Errorf("fetchKey wrote %d bytes, want the key", len(got))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("fetchKey: %v, want an error naming %q", err, tc.wantErr)
			}
		})
	}
}

// The pin is the build's: the repository file a container's dnf reads names
// the key without it.
func TestPinNotInContainerRepos(t *testing.T) {
	const fp = "0123456789ABCDEF0123456789ABCDEF01234567"
	root := t.TempDir()
	spec := &packager.Spec{Keys: []string{"https://mirror.example/KEY#fingerprint=" + fp}, Repos: []packager.Repo{{Name: "base", Mirrors: []string{"https://mirror.example/os/"}}}}
	cacher, _ := url.Parse("http://127.0.0.1:3142")
	if err := (Dnf{}).ConfigureRepos(context.Background(), root, spec, cacher); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, repoFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "gpgkey=http://127.0.0.1:3142/HTTPS///mirror.example/KEY\n") {
		t.Errorf("the container's repository file:\n%s\nwant gpgkey=http://127.0.0.1:3142/HTTPS///mirror.example/KEY without the pin", data)
	}
}

// sameBlock armors the packets of key, then those of extra without its
// signatures (asSubkey: its key packet made a subkey packet), in one block.
func sameBlock(t *testing.T, key, extra []byte, asSubkey bool) []byte {
	t.Helper()
	var packets bytes.Buffer
	for i, armored := range [][]byte{key, extra} {
		block, err := armor.Decode(bytes.NewReader(armored))
		if err != nil {
			t.Fatal(err)
		}
		r := packet.NewOpaqueReader(block.Body)
		for {
			p, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if i == 1 {
				if p.Tag == packetSignature || asSubkey && p.Tag != packetPublicKey {
					continue
				}
				if asSubkey {
					p.Tag = packetPublicSubkey
				}
			}
			if err := p.Serialize(&packets); err != nil {
				t.Fatal(err)
			}
		}
	}
	var out bytes.Buffer
	w, err := armor.Encode(&out, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(packets.Bytes())
	w.Close()
	return out.Bytes()
}

const packetSignature = 2
