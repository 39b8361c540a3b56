package jpeg

import (
	"math/rand/v2"
	"testing"
)

// idctFull is idctInt without its shortcuts for zero rows and columns.
func idctFull(blk *[64]int32) (out [64]int32) {
	var ws [64]int
	for x := range 8 {
		o := [8]int{}
		o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7] = idct1D(int(blk[x]), int(blk[8+x]), int(blk[16+x]), int(blk[24+x]),
			int(blk[32+x]), int(blk[40+x]), int(blk[48+x]), int(blk[56+x]))
		for y := range 8 {
			ws[y*8+x] = (o[y] + 1<<10) >> 11
		}
	}
	for y := range 8 {
		w := ws[y*8:]
		o := [8]int{}
		o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7] = idct1D(w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7])
		for x := range 8 {
			out[y*8+x] = clamp8((o[x]+1<<17)>>18 + 128)
		}
	}
	return
}

// TestIDCTInt: the shortcuts change nothing, and the integer IDCT stays
// within ±1 of the double-precision one.
func TestIDCTInt(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	far := 0
	for n := range 20000 {
		var blk [64]int32
		// Sparse blocks (most rows and columns zero, as in real data) and
		// dense ones; DC-only blocks every 10th.
		k := 1 + r.IntN(6)
		if n%3 == 0 {
			k = 64
		}
		if n%10 == 0 {
			k = 0
		}
		blk[0] = int32(r.IntN(2048) - 1024)
		for range k {
			blk[r.IntN(64)] = int32(r.IntN(400) - 200)
		}
		var got, ref [64]int32
		idctInt(&blk, got[:], 8)
		if want := idctFull(&blk); got != want {
			t.Fatalf("block %v: %v, want %v", blk, got, want)
		}
		idct(&blk, ref[:], 8, 128, 255)
		for i := range got {
			if d := got[i] - ref[i]; d > 1 || d < -1 {
				far++
			}
		}
	}
	if far > 0 {
		t.Errorf("%d samples differ from the float IDCT by more than 1", far)
	}
}
