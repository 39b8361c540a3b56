package storagetest

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/molar-health/molar/storage"
)

// BenchPut measures Put throughput of objects of the given size. With
// knownSize false the size is given as -1 (a stream of unknown length). The
// reader hides Seek and ReadAt, like a network stream. Keys cycle through
// 8 names, so disk use stays bounded at any b.N.
func BenchPut(b *testing.B, s storage.ObjectStore, size int, knownSize bool) {
	data := Pattern(11, size)
	opts := storage.PutOptions{Size: int64(size)}
	if !knownSize {
		opts.Size = -1
	}
	ctx := context.Background()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		key := fmt.Sprintf("bench/%d/obj-%d.bin", size, i%8)
		if _, err := s.Put(ctx, key, onlyReader{bytes.NewReader(data)}, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchPutSizes runs BenchPut for 64 KiB and 8 MiB objects, of known and
// unknown size.
func BenchPutSizes(b *testing.B, s storage.ObjectStore) {
	for _, size := range []int{64 << 10, 8 << 20} {
		for _, known := range []bool{true, false} {
			name := fmt.Sprintf("%dKiB", size>>10)
			if !known {
				name += "/unknown-size"
			} else {
				name += "/known-size"
			}
			b.Run(name, func(b *testing.B) { BenchPut(b, s, size, known) })
		}
	}
}
