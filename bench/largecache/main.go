// Command largecache fills a pkg-cacher cache directory for bench/large.sh:
// -files package files of random bytes (1 to 4 KiB) under
// bench.invalid/debian/pool/, and one Packages index that lists them and
// as many more packages as it takes to hold -sums checksums.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"time"

	"vzpkg2/internal/store"
	"vzpkg2/internal/store/disk"
)

func main() {
	dir := flag.String("dir", "", "cache directory to fill (cache_dir)")
	files := flag.Int("files", 200_000, "package files to store")
	sums := flag.Int("sums", 500_000, "checksums the Packages index lists")
	flag.Parse()
	if *dir == "" || *sums < *files {
		log.Fatal("usage: largecache -dir DIR [-files N] [-sums M], M >= N")
	}
	ctx := context.Background()
	st, err := disk.Open(*dir)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	put := func(key string, body []byte) {
		w, err := st.Create(ctx, key)
		if err != nil {
			log.Fatal(err)
		}
		w.Write(body)
		if _, err := w.Commit(ctx, store.Info{Validated: time.Now()}); err != nil {
			log.Fatal(err)
		}
		w.Close()
	}
	var packages bytes.Buffer
	body := make([]byte, 4096)
	for i := range *sums {
		name := fmt.Sprintf("pool/main/p/pkg%d/pkg%d_1.0-1_amd64.deb", i, i)
		n := 1024 + i%3072
		rand.Read(body[:n])
		sum := sha256.Sum256(body[:n])
		if i < *files {
			put("bench.invalid/debian/"+name, body[:n])
		}
		fmt.Fprintf(&packages, "Package: pkg%d\nVersion: 1.0-1\nArchitecture: amd64\nFilename: %s\nSize: %d\nSHA256: %s\n\n",
			i, name, n, hex.EncodeToString(sum[:]))
	}
	put("bench.invalid/debian/dists/stable/main/binary-amd64/Packages", packages.Bytes())
	fmt.Printf("%d files, %d checksums, Packages %d bytes\n", *files, *sums, packages.Len())
}
