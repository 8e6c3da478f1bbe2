package cacheserver

import (
	"context"
	"strings"
	"testing"
	"time"

	"vzpkg2/internal/repotest"
)

// With verify_signatures, an InRelease signed by a key not in the keyrings is
// neither stored nor served; one signed by a trusted key is.
func TestInReleaseSignatureChecked(t *testing.T) {
	trusted := repotest.BuildAptRepo(t, t.TempDir(), "stable", []repotest.Deb{{Name: "app", Version: "1", Size: 1024}})
	other := repotest.BuildAptRepo(t, t.TempDir(), "stable", []repotest.Deb{{Name: "app", Version: "1", Size: 1024}})

	good := repotest.NewUpstream(t, trusted.Root)
	c := startCacher(t, good.HostPort(), "", "verify_signatures="+trusted.Keyring)
	apt := repotest.NewAptClient(t, trusted.SourcesLine(c.url("/local")), "")
	apt.Update(t)
	apt.DownloadOnly(t, "app")

	forged := repotest.NewUpstream(t, other.Root)
	c2 := startCacher(t, forged.HostPort(), "", "verify_signatures="+trusted.Keyring)
	// The client trusts the other key: only pkg-cacher's check stands between it and the file.
	apt2 := repotest.NewAptClient(t, other.SourcesLine(c2.url("/local")), "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _ := apt2.Run(ctx, "-q", "update")
	if !strings.Contains(out, "Err:") || !strings.Contains(out, "InRelease") {
		t.Errorf("apt update through the cache did not fail on the forged InRelease:\n%s", out)
	}
	if n := countFiles(t, c2.dir+"/blobs"); n != 0 {
		t.Errorf("%d files stored, want none (the forged InRelease refused)", n)
	}
}
