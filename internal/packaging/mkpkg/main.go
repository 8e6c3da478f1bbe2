// Command mkpkg builds vzpkg2's .deb and .rpm packages, or installs the same
// files from the source checkout (make packages, make install):
//
//	mkpkg -bin DIR [-out DIR] [-version V] deb rpm
//	mkpkg -bin DIR [-prefix /usr/local] [-destdir DIR] install
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"vzpkg2/internal/packaging"
)

func main() {
	src := flag.String("src", ".", "the source checkout")
	bin := flag.String("bin", "", "the directory holding the built vzpkg and pkg-cacher")
	out := flag.String("out", "dist", "where the packages are written")
	version := flag.String("version", "", "the package version (default: from git describe)")
	arch := flag.String("arch", runtime.GOARCH, "the programs' architecture, as GOARCH names it")
	prefix := flag.String("prefix", "/usr/local", "install: the prefix of programs and data (packages: /usr)")
	destdir := flag.String("destdir", "", "install: the directory standing for / (for staging)")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: mkpkg -bin DIR [flags] deb|rpm|install...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *bin == "" || flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(context.Background(), *src, *bin, *out, *version, *arch, *prefix, *destdir, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "mkpkg:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, src, bin, out, version, arch, prefix, destdir string, targets []string) error {
	for _, t := range targets {
		target := packaging.Target(t)
		if target == packaging.Install {
			files, err := packaging.Layout(src, bin, prefix, target)
			if err != nil {
				return err
			}
			if err := packaging.InstallTo(files, destdir, func(f packaging.File, dst string) {
				fmt.Printf("kept %s as it is; the shipped one is %s\n", dst, f.Src)
			}); err != nil {
				return err
			}
			fmt.Printf("installed %d files under %s%s\n", len(files), destdir, prefix)
			continue
		}
		if version == "" {
			var err error
			if version, err = packaging.Version(ctx, src); err != nil {
				return err
			}
		} else if err := packaging.CheckVersion(version); err != nil {
			return err
		}
		mtime, err := packaging.SourceDate(ctx, src)
		if err != nil {
			return err
		}
		files, err := packaging.Layout(src, bin, "/usr", target)
		if err != nil {
			return err
		}
		stage, err := os.MkdirTemp("", "mkpkg-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(stage)
		if err := os.MkdirAll(out, 0o755); err != nil {
			return err
		}
		m := packaging.Meta{Version: version, Arch: arch, MTime: mtime, Scripts: filepath.Join(src, "internal/packaging/scripts")}
		name, err := packaging.Build(target, files, m, filepath.Join(stage, t), out)
		if err != nil {
			return err
		}
		fmt.Println(name)
	}
	return nil
}
