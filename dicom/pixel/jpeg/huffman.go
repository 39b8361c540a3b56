package jpeg

import "fmt"

const lookBits = 9

// huffman is a decoding table built from a DHT segment (T.81 Annex C and
// F.2.2.3): a direct lookup for codes up to lookBits long, then the
// MAXCODE/VALPTR procedure.
type huffman struct {
	lookup  [1 << lookBits]uint16 // length<<8 | value; 0 = longer code
	maxcode [18]int32
	mincode [17]int32
	valptr  [17]int32
	vals    []byte
}

func newHuffman(counts [16]int, vals []byte) (*huffman, error) {
	h := &huffman{vals: append([]byte(nil), vals...)}
	code, k := 0, 0
	for l := 1; l <= 16; l++ {
		n := counts[l-1]
		h.valptr[l] = int32(k)
		h.mincode[l] = int32(code)
		h.maxcode[l] = -1
		if n > 0 {
			if code+n > 1<<l {
				return nil, fmt.Errorf("%w: over-subscribed Huffman table", ErrMalformed)
			}
			for range n {
				if l <= lookBits {
					shift := lookBits - l
					base := code << shift
					for j := range 1 << shift {
						h.lookup[base+j] = uint16(l)<<8 | uint16(vals[k])
					}
				}
				code++
				k++
			}
			h.maxcode[l] = int32(code - 1)
		}
		code <<= 1
	}
	h.maxcode[17] = 1 << 30
	return h, nil
}

// bitReader reads entropy-coded data: it removes stuffed zero bytes and
// stops at markers, feeding zero bits from there on (T.81 F.2.2.5).
type bitReader struct {
	data   []byte
	pos    int
	acc    uint64
	n      uint
	marker bool // reached a marker or the end
}

func (b *bitReader) fill() {
	for b.n <= 56 {
		var c byte
		if !b.marker && b.pos < len(b.data) {
			c = b.data[b.pos]
			if c == 0xFF {
				if b.pos+1 < len(b.data) && b.data[b.pos+1] == 0x00 {
					b.pos += 2
				} else {
					b.marker = true
					c = 0
				}
			} else {
				b.pos++
			}
		} else {
			b.marker = true
		}
		b.acc = b.acc<<8 | uint64(c)
		b.n += 8
	}
}

// bits reads s (0–16) bits.
func (b *bitReader) bits(s uint) int32 {
	if s == 0 {
		return 0
	}
	if b.n < s {
		b.fill()
	}
	b.n -= s
	return int32(b.acc>>b.n) & (1<<s - 1)
}

// extend reads s bits and sign-extends them as a difference (T.81 F.2.2.1).
func (b *bitReader) extend(s uint) int32 {
	if s == 0 {
		return 0
	}
	v := b.bits(s)
	if v < 1<<(s-1) {
		v += -1<<s + 1
	}
	return v
}

func (b *bitReader) decode(h *huffman) (int, error) {
	if b.n < 16 {
		b.fill()
	}
	peek := (b.acc >> (b.n - lookBits)) & (1<<lookBits - 1)
	if e := h.lookup[peek]; e != 0 {
		b.n -= uint(e >> 8)
		return int(e & 0xFF), nil
	}
	code := int32(0)
	for l := 1; l <= 16; l++ {
		b.n--
		code = code<<1 | int32(b.acc>>b.n)&1
		if code <= h.maxcode[l] {
			i := h.valptr[l] + code - h.mincode[l]
			if i < 0 || int(i) >= len(h.vals) {
				break
			}
			return int(h.vals[i]), nil
		}
	}
	return 0, fmt.Errorf("%w: bad Huffman code", ErrMalformed)
}

// restart discards the bits left of an interval and steps over the RSTn
// marker that must follow (tolerating its absence).
func (b *bitReader) restart() {
	b.acc, b.n, b.marker = 0, 0, false
	p := b.pos
	for p < len(b.data) && b.data[p] == 0xFF && p+1 < len(b.data) && b.data[p+1] == 0xFF {
		p++
	}
	if p+1 < len(b.data) && b.data[p] == 0xFF && b.data[p+1] >= 0xD0 && b.data[p+1] <= 0xD7 {
		b.pos = p + 2
	}
}
