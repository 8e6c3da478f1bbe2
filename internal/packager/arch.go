package packager

import (
	"fmt"
	"os"
	"runtime"
)

// hostArches maps Go's architecture names to vzpkg's (rpm's).
var hostArches = map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}

// qemuNames maps vzpkg's architecture names to qemu's, which name the
// binfmt_misc handlers qemu-user-static registers.
var qemuNames = map[string]string{"x86_64": "x86_64", "aarch64": "aarch64", "i686": "i386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}

// binfmtDir is where the kernel lists the registered binfmt_misc handlers.
const binfmtDir = "/proc/sys/fs/binfmt_misc"

// CheckArch reports whether this host can build a root of arch (vzpkg's
// name, e.g. "aarch64"), whose programs a build runs: its own architecture
// (and i686 on x86_64) natively; another one only through qemu-user-static's
// binfmt_misc handler, without which the error names the package to install.
// foreign is true for another architecture.
func CheckArch(arch string) (foreign bool, err error) {
	host := hostArches[runtime.GOARCH]
	if arch == "" || arch == host || (host == "x86_64" && arch == "i686") {
		return false, nil
	}
	handler := binfmtDir + "/qemu-" + qemuNames[arch]
	if _, err := os.Stat(handler); err != nil || qemuNames[arch] == "" {
		return true, fmt.Errorf("building %s templates on %s runs their programs with qemu, and %s is not registered: install qemu-user-static (apt-get install qemu-user-static binfmt-support)", arch, host, handler)
	}
	return true, nil
}
