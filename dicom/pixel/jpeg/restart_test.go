package jpeg

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// losslessEncoder writes a one-component lossless JPEG (T.81 Annex H,
// predictor 1) with an optional restart interval: DCMTK's encoder writes
// no restart markers, some devices do.
type losslessEncoder struct {
	out  []byte
	acc  uint32
	n    uint
	code [17]uint16 // category → 5-bit code
}

func (e *losslessEncoder) put(v uint32, n uint) {
	for n > 0 {
		n--
		e.acc = e.acc<<1 | (v>>n)&1
		e.n++
		if e.n == 8 {
			b := byte(e.acc)
			e.out = append(e.out, b)
			if b == 0xFF {
				e.out = append(e.out, 0x00)
			}
			e.acc, e.n = 0, 0
		}
	}
}

func (e *losslessEncoder) flush() {
	if e.n > 0 {
		e.put(1<<(8-e.n)-1, 8-e.n) // pad with ones
	}
}

func encodeLossless(pix []uint16, w, h, precision, restart int) []byte {
	e := &losslessEncoder{}
	seg := func(marker byte, payload ...byte) {
		e.out = append(e.out, 0xFF, marker)
		e.out = binary.BigEndian.AppendUint16(e.out, uint16(len(payload)+2))
		e.out = append(e.out, payload...)
	}
	e.out = append(e.out, 0xFF, 0xD8)
	seg(0xC3, byte(precision), byte(h>>8), byte(h), byte(w>>8), byte(w), 1, 1, 0x11, 0)
	// Categories 0…16, all with 5-bit codes.
	dht := []byte{0x00, 0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	for s := range 17 {
		dht = append(dht, byte(s))
		e.code[s] = uint16(s)
	}
	seg(0xC4, dht...)
	if restart > 0 {
		seg(0xDD, byte(restart>>8), byte(restart))
	}
	seg(0xDA, 1, 1, 0x00, 1, 0, 0)
	mask := int32(1)<<precision - 1
	left, rst := restart, 0
	rRow, rCol := 0, 0
	for y := range h {
		for x := range w {
			if restart > 0 {
				if left == 0 {
					e.flush()
					e.out = append(e.out, 0xFF, 0xD0+byte(rst%8))
					rst++
					left = restart
					rRow, rCol = y, x
				}
				left--
			}
			i := y*w + x
			var pred int32
			switch {
			case y == rRow && x == rCol:
				pred = 1 << (precision - 1)
			case y == rRow:
				pred = int32(pix[i-1])
			case x == 0:
				pred = int32(pix[i-w])
			default:
				pred = int32(pix[i-1])
			}
			diff := int32(int16(uint16(int32(pix[i]) - pred))) // modulo 2^16
			if precision < 16 {
				diff = (int32(pix[i]) - pred) & mask
				if diff >= 1<<(precision-1) {
					diff -= 1 << precision
				}
			}
			if diff == -32768 {
				e.put(uint32(e.code[16]), 5)
				continue
			}
			mag := diff
			if mag < 0 {
				mag = -mag
			}
			s := uint(0)
			for mag>>s != 0 {
				s++
			}
			e.put(uint32(e.code[s]), 5)
			if diff < 0 {
				diff--
			}
			e.put(uint32(diff)&(1<<s-1), s)
		}
	}
	e.flush()
	e.out = append(e.out, 0xFF, 0xD9)
	return e.out
}

// TestLosslessRestartIntervals: lossless frames with restart markers (every
// row, every few rows) decode to their samples; after each marker the
// prediction starts again as at the top of the image (T.81 H.1.2.1).
func TestLosslessRestartIntervals(t *testing.T) {
	const w, h = 37, 23
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		name       string
		precision  int
		restart    int
		smoothness int
	}{
		{"no restarts", 12, 0, 30},
		{"every row, 12-bit", 12, w, 30},
		{"every three rows, 16-bit", 16, 3 * w, 5000},
		{"every row, 16-bit noise", 16, w, 1 << 16},
	} {
		t.Run(c.name, func(t *testing.T) {
			pix := make([]uint16, w*h)
			v := 1 << (c.precision - 2)
			for i := range pix {
				v = (v + rnd.IntN(2*c.smoothness+1) - c.smoothness) & (1<<c.precision - 1)
				pix[i] = uint16(v)
			}
			data := encodeLossless(pix, w, h, c.precision, c.restart)
			img, err := Decode(data, Options{Width: w, Height: h})
			if err != nil {
				t.Fatal(err)
			}
			bad := 0
			for i := range pix {
				if img.Pix[i] != pix[i] {
					if bad < 3 {
						t.Errorf("sample %d (x %d y %d): %d, want %d", i, i%w, i/w, img.Pix[i], pix[i])
					}
					bad++
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d samples differ", bad, len(pix))
			}
		})
	}
}
