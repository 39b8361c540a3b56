package dimse

import "runtime"

type runtimeMemStats struct{ m runtime.MemStats }

func (r *runtimeMemStats) heapInUse() uint64 {
	runtime.ReadMemStats(&r.m)
	return r.m.HeapInuse
}
