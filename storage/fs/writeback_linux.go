package fs

import (
	"os"
	"syscall"
)

// startWriteback asks the kernel to begin writing [off, off+n) of f to disk
// now (sync_file_range SYNC_FILE_RANGE_WRITE: asynchronous, no metadata, no
// durability promise). The fsync at the end of the Put still makes the
// object durable; it just finds most pages already written, so a large
// object's disk writes overlap its arrival instead of following it.
func startWriteback(f *os.File, off, n int64) {
	const syncFileRangeWrite = 2 // SYNC_FILE_RANGE_WRITE
	_, _, _ = syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, f.Fd(), uintptr(off), uintptr(n), syncFileRangeWrite, 0, 0)
}
