package dimse

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/molar-health/molar/dicom/uid"
)

func discardStore() StoreHandler {
	return StoreFunc(func(ctx context.Context, req *StoreRequest, data io.Reader) (Status, error) {
		_, err := io.Copy(io.Discard, data)
		return StatusSuccess, err
	})
}

// BenchmarkCStore measures C-STORE throughput over loopback, our SCU to our
// SCP with a discarding handler, one association per worker.
func BenchmarkCStore(b *testing.B) {
	for _, size := range []int{64 << 10, 2600 << 10} {
		for _, assocs := range []int{1, 4} {
			b.Run(fmt.Sprintf("size=%dKiB/assocs=%d", size>>10, assocs), func(b *testing.B) {
				benchStore(b, size, assocs)
			})
		}
	}
}

func benchStore(b *testing.B, size, assocs int) {
	addr := startServer(b, &Server{Store: discardStore()})
	data := sampleDataset("1.2.3.4.5", size-200)
	b.SetBytes(int64(len(data)))
	as := make([]*Association, assocs)
	for i := range as {
		as[i] = dialTest(b, addr, DialOptions{})
		defer as[i].Close()
	}
	p := StoreParams{SOPClassUID: uid.DigitalIntraOralXRayForPresentation, SOPInstanceUID: "1.2.3.4.5", TransferSyntax: uid.ExplicitVRLittleEndian}
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N / assocs
	for i, a := range as {
		n := per
		if i == 0 {
			n += b.N % assocs
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < n; j++ {
				st, err := a.Store(context.Background(), p, bytes.NewReader(data))
				if err != nil || st != StatusSuccess {
					b.Errorf("store: %v %v", st, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "instances/s")
}
