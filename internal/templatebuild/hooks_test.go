package templatebuild

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"vzpkg2/internal/tmpl"
)

// writeHook writes an executable final hook script and returns its path.
func writeHook(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hook.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// alive reports whether process pid runs (a zombie does not).
func alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// leftPIDs reads the process IDs a hook wrote to file.
func leftPIDs(t *testing.T, file string) []int {
	t.Helper()
	data, _ := os.ReadFile(file)
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	if len(pids) == 0 {
		t.Fatalf("the hook did not write its background process IDs to %s", file)
	}
	return pids
}

// hookedCreate is fakeCreate of a template with hook as its final hook.
func hookedCreate(ctx context.Context, t *testing.T, opt Options, hook string) (*Result, error) {
	t.Helper()
	unlock, err := lockTemplate(ctx, testName, opt)
	if err != nil {
		return nil, err
	}
	defer unlock()
	def := testDef()
	def.Hooks = map[tmpl.Phase][]string{tmpl.PhaseFinal: {hook}}
	b, err := start(def, opt)
	if err != nil {
		return nil, err
	}
	defer b.cleanup(nil)
	writeRoot(t, b.root, "1")
	return b.finish(ctx)
}

func TestFinalHooks(t *testing.T) {
	t.Run("background process left behind", func(t *testing.T) {
		pids := filepath.Join(t.TempDir(), "pids")
		hook := writeHook(t, "sleep 20 & echo $! > "+pids+"\n")
		start := time.Now()
		if _, err := hookedCreate(context.Background(), t, Options{CacheDir: t.TempDir()}, hook); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("a hook leaving sleep 20 behind delayed the build to %v", d)
		}
		for _, pid := range leftPIDs(t, pids) {
			if alive(pid) {
				t.Errorf("the hook's background process %d outlives the build", pid)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	t.Run("timeout", func(t *testing.T) {
		hook := writeHook(t, "sleep 30\n")
		start := time.Now()
		_, err := hookedCreate(context.Background(), t, Options{CacheDir: t.TempDir(), HookTimeout: time.Second}, hook)
		if err == nil || !strings.Contains(err.Error(), "did not finish within 1s (hook_timeout)") {
			t.Errorf("a hook running past hook_timeout: got %v, want \"did not finish within 1s (hook_timeout)\"", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("the build stopped %v after a hook_timeout of 1s", d)
		}
	})
	t.Run("failing hook shows its output", func(t *testing.T) {
		hook := writeHook(t, "echo starting\necho 'cannot write /etc/motd: disk says no' >&2\nexit 3\n")
		_, err := hookedCreate(context.Background(), t, Options{CacheDir: t.TempDir()}, hook)
		if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "cannot write /etc/motd: disk says no") {
			t.Errorf("a failing hook: got %v, want its exit status and its output", err)
		}
	})
	t.Run("interrupt", func(t *testing.T) {
		pids := filepath.Join(t.TempDir(), "pids")
		hook := writeHook(t, "sleep 30 & echo $! > "+pids+"\nsleep 30\n")
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(time.Second, cancel)
		start := time.Now()
		if _, err := hookedCreate(ctx, t, Options{CacheDir: t.TempDir()}, hook); err == nil {
			t.Error("an interrupted hook: the build succeeded")
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("the build stopped %v after the interrupt", d)
		}
		for _, pid := range leftPIDs(t, pids) {
			if alive(pid) {
				t.Errorf("the hook's background process %d outlives the interrupted build", pid)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
}
