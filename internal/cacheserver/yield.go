package cacheserver

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"vzpkg2/internal/expire"
	"vzpkg2/internal/store"
)

// lowPriority runs fn on an OS thread of its own at the lowest CPU and I/O
// priority, and lets the Go scheduler run one more goroutine at a time
// meanwhile: serving keeps every CPU it had, and fn gets what serving
// leaves. (The thread ends with fn: its priority stays with it.) The
// thread is SCHED_IDLE, not only at nice 19: Linux lets a thread at nice
// 19 finish its slice (milliseconds) before a woken serving thread gets
// its CPU, but preempts a SCHED_IDLE one at once, and places woken threads
// on a CPU that runs only such threads as on an idle one. One fn runs at a
// time (the collection after a crash, an expiry pass): each changes
// GOMAXPROCS for its length.
func lowPriority(fn func()) {
	lowMu.Lock()
	defer lowMu.Unlock()
	// Each collection cycle stops the world, and a stop waits for fn's
	// thread to reach a safe point: at SCHED_IDLE on a busy machine that
	// can take tens of milliseconds, every client waiting. fn allocates
	// much that lives briefly (a pass over a large cache: hundreds of MB),
	// so the heap may grow further meanwhile: a few cycles, not one per
	// live heap's worth allocated.
	if gc := debug.SetGCPercent(lowGCPercent); gc < 0 || gc > lowGCPercent {
		debug.SetGCPercent(gc) // off, or already higher: as it was
	} else {
		defer func() {
			debug.SetGCPercent(gc)
			debug.FreeOSMemory() // what fn's garbage took, back now
		}()
	}
	procs := runtime.GOMAXPROCS(0)
	runtime.GOMAXPROCS(procs + 1)
	defer func() {
		if os.Getenv("GOMAXPROCS") == "" {
			runtime.SetDefaultGOMAXPROCS()
		} else {
			runtime.GOMAXPROCS(procs)
		}
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		tid := unix.Gettid()
		// SCHED_IDLE, and nice 19 should a kernel refuse it.
		unix.SchedSetAttr(tid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE, Nice: 19}, 0)
		unix.Setpriority(unix.PRIO_PROCESS, tid, 19)
		const whoProcess, classIdle, classShift = 1, 3, 13 // linux/ioprio.h
		unix.Syscall(unix.SYS_IOPRIO_SET, whoProcess, uintptr(tid), classIdle<<classShift)
		fn()
	}()
	<-done
}

var lowMu sync.Mutex // held by lowPriority

// lowGCPercent is GOGC while lowPriority runs.
const lowGCPercent = 800

// A yielder keeps a pass running in lowPriority's thread to a share of one
// CPU while clients are being served. Even at SCHED_IDLE a pass slows a
// busy loopback's serving by about the CPU time it gets (on this 2-CPU VM,
// bench/expirehot.sh), so after each slice of CPU time in which a client
// was served, the pass sleeps until it has used yieldShare of the time
// since the slice began. With no client it runs on.
type yielder struct {
	served func() uint64 // how many times clients have been served so far
	steps  int
	last   uint64        // served at the end of the last slice
	mark   time.Duration // the thread's CPU time then
}

const (
	yieldSlice   = 5 * time.Millisecond // of CPU time
	yieldShare   = 0.15                 // of one CPU
	yieldEvery   = 64                   // steps between looks at the clock: a walked entry is one, a read all
	yieldLongest = time.Second          // of one sleep
)

// newYielder starts a yielder on the calling thread.
func newYielder(served func() uint64) *yielder {
	return &yielder{served: served, last: served(), mark: threadCPU()}
}

// step is called often, on the pass's thread, with the work done since
// (in steps).
func (y *yielder) step(n int) {
	if y.steps += n; y.steps < yieldEvery {
		return
	}
	y.steps = 0
	worked := threadCPU() - y.mark
	if worked < yieldSlice {
		return
	}
	if n := y.served(); n != y.last {
		y.last = n
		time.Sleep(min(time.Duration(float64(worked)*(1-yieldShare)/yieldShare), yieldLongest))
	}
	y.mark = threadCPU()
}

// threadCPU is the CPU time of the calling thread.
func threadCPU() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}

// yielding is a store whose walk, reads and deletions step a yielder.
type yielding struct {
	expire.Store
	y *yielder
}

func (s yielding) Walk(ctx context.Context, fn func(store.Info) error) error {
	return s.Store.Walk(ctx, func(info store.Info) error {
		s.y.step(1)
		return fn(info)
	})
}

func (s yielding) Open(ctx context.Context, key string) (store.Object, error) {
	s.y.step(1)
	obj, err := s.Store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	return yieldingObject{obj, s.y}, nil
}

func (s yielding) Delete(ctx context.Context, key string) error {
	s.y.step(1)
	return s.Store.Delete(ctx, key)
}

type yieldingObject struct {
	store.Object
	y *yielder
}

func (o yieldingObject) Read(p []byte) (int, error) {
	o.y.step(yieldEvery)
	return o.Object.Read(p)
}
