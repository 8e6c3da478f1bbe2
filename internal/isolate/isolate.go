// Package isolate runs a program again in a mount namespace and a PID
// namespace of its own, so that whatever the run mounts and whatever it
// starts dies with it: when the re-run process ends, however it ends
// (SIGKILL included), the kernel kills every process left in its PID
// namespace, and with the last of them the mount namespace goes, with every
// mount made in it. The process that re-ran it waits and passes signals on;
// when it is killed itself, the re-run gets SIGKILL (PR_SET_PDEATHSIG).
package isolate

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
)

// Env is the environment variable that marks the re-run process; its value
// is the process ID of the process that re-ran it.
const Env = "VZPKG_ISOLATED"

// PID returns the process ID users know this run by: in a re-run process
// (PID 1 of its namespace), the ID of the process that re-ran it, which is
// the one they started and would signal; otherwise the process's own.
func PID() int {
	if pid, err := strconv.Atoi(os.Getenv(Env)); err == nil && pid > 1 {
		return pid
	}
	return os.Getpid()
}

// Self runs the current program again with the same arguments, standard
// input, output and error, in new mount and PID namespaces (the new mount
// namespace's mounts private: nothing mounted in it reaches the host), and
// returns its exit status with ok true. It returns ok false, and the caller
// goes on by itself, when this process is the re-run one or when the
// namespaces cannot be made (not root, or a container that does not allow
// them).
func Self() (status int, ok bool) {
	if os.Getenv(Env) != "" {
		return 0, false
	}
	exe, err := os.Executable()
	if err != nil {
		return 0, false
	}
	// PR_SET_PDEATHSIG follows the thread that started the child: keep
	// this goroutine on it for as long as the child runs.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), Env+"="+strconv.Itoa(os.Getpid()))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:   syscall.CLONE_NEWPID,
		Unshareflags: syscall.CLONE_NEWNS, // and / made rprivate
		Pdeathsig:    syscall.SIGKILL,
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSPC) {
			return 0, false
		}
		os.Stderr.WriteString("vzpkg: " + err.Error() + "\n")
		return 1, true
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-sigs:
			// The child is PID 1 of its namespace: it gets only the
			// signals it handles, which are these.
			cmd.Process.Signal(sig)
		case err := <-done:
			return exitStatus(cmd, err), true
		}
	}
}

// exitStatus is the status a shell would report for the child.
func exitStatus(cmd *exec.Cmd, err error) int {
	if cmd.ProcessState == nil {
		return 1
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	if code := cmd.ProcessState.ExitCode(); code >= 0 {
		return code
	}
	return 1
}
