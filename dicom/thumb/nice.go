package thumb

import (
	"runtime"
	"syscall"
)

// niced runs fn on an operating-system thread of its own at scheduling
// priority nice (Linux: the nice value is per thread), so that when the
// cores are busy, the work of arriving instances goes first. The thread
// is never handed back to the Go scheduler: it ends with the goroutine,
// and its priority with it.
func niced(nice int, fn func() error) error {
	if nice == 0 {
		return fn()
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // no Unlock: the thread exits with the goroutine
		_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), nice)
		done <- fn()
	}()
	return <-done
}
