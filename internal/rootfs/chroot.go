package rootfs

import (
	"context"
	"os/exec"

	"golang.org/x/sys/unix"
)

// ChrootEnv is the environment of every command vzpkg runs in a root: a
// fixed PATH and locale, nothing of vzpkg's own environment.
var ChrootEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root",
	"LANG=C.UTF-8",
	"LC_ALL=C.UTF-8",
}

// Command returns the command that runs argv in a chroot of root (argv[0]
// looked up in the root's PATH) with ChrootEnv and env as its whole
// environment. It gets no open file of vzpkg's but standard input (none
// unless set), output and error: exec.Cmd passes those and ExtraFiles only
// when every other descriptor is close-on-exec, which Go makes its own
// descriptors, and Command marks so the ones vzpkg inherited from whatever
// started it.
func Command(ctx context.Context, root string, env []string, argv ...string) *exec.Cmd {
	// Marking is harmless to the rest of vzpkg: Go never passes a
	// descriptor to a child by leaving it open, only through ExtraFiles.
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	cmd := exec.CommandContext(ctx, "chroot", append([]string{root}, argv...)...)
	cmd.Env = append(append([]string{}, ChrootEnv...), env...)
	return cmd
}
