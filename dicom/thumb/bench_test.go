package thumb

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/molar-health/molar/dicom/pixel/pixeltest"

	"github.com/molar-health/molar/storage/postgres/pgtest"
)

// BenchmarkThumbnail measures decode + render + both thumbnail sizes +
// storing them (filesystem store), per instance type and transfer syntax:
// the work between C-STORE Success and "thumbnail ready" (target: 1 s p95).
func BenchmarkThumbnail(b *testing.B) {
	variants := []struct {
		name string
		tool []string
	}{
		{"native", nil},
		{"jpeg-lossless-sv1", []string{"dcmcjpeg", "+e1"}},
		{"jpeg-extended-12bit", []string{"dcmcjpeg", "+ee"}},
		{"rle", []string{"dcmcrle"}},
		{"jpegls", []string{"dcmcjpls"}},
		{"j2k", []string{"gdcmconv", "--j2k"}},
	}
	for _, sp := range []pixeltest.Spec{pixeltest.Intraoral(), pixeltest.Panoramic()} {
		dir := b.TempDir()
		src := filepath.Join(dir, "src.dcm")
		if err := sp.Write(src); err != nil {
			b.Fatal(err)
		}
		for _, v := range variants {
			b.Run(sp.Name+"/"+v.name, func(b *testing.B) {
				file := src
				if v.tool != nil {
					if _, err := exec.LookPath(v.tool[0]); err != nil {
						pgtest.Unavailable(b, v.tool[0], err)
					}
					file = filepath.Join(dir, v.name+".dcm")
					if _, err := os.Stat(file); err != nil {
						args := append(append([]string{}, v.tool[1:]...), src, file)
						if out, err := exec.Command(v.tool[0], args...).CombinedOutput(); err != nil {
							b.Fatalf("%v: %s", err, out)
						}
					}
				}
				data, err := os.ReadFile(file)
				if err != nil {
					b.Fatal(err)
				}
				store := newStoreB(b)
				key := "instances/bench/" + sp.Name + ".dcm"
				putB(b, store, key, data)
				w := &Worker{Store: store}
				ctx := context.Background()
				if err := w.Make(ctx, key); err != nil { // warm the codec workers
					b.Fatal(err)
				}
				b.ResetTimer()
				for b.Loop() {
					if err := w.Make(ctx, key); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
