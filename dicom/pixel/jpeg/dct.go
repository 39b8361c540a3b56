package jpeg

import (
	"fmt"
	"math"
)

// zigzag maps the zig-zag index of a coefficient to its natural (row-major)
// position in the 8×8 block (T.81 Figure A.6).
var zigzag = [64 + 16]int{
	0, 1, 8, 16, 9, 2, 3, 10,
	17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34,
	27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36,
	29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46,
	53, 60, 61, 54, 47, 55, 62, 63,
	// guard entries for corrupt run lengths
	63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
}

// idctTable[x][u] = C(u)/2 · cos((2x+1)uπ/16), so that the 2-D inverse DCT
// of T.81 A.3.3 is the product of two 1-D passes.
var idctTable = func() (t [8][8]float64) {
	for x := range 8 {
		for u := range 8 {
			c := 1.0
			if u == 0 {
				c = 1 / math.Sqrt2
			}
			t[x][u] = c / 2 * math.Cos(float64(2*x+1)*float64(u)*math.Pi/16)
		}
	}
	return
}()

func (d *decoder) dctScan(sc scan) error {
	for _, c := range sc.comps {
		if d.dc[c.dcTable] == nil || d.ac[c.acTable] == nil {
			return fmt.Errorf("%w: missing Huffman table", ErrMalformed)
		}
		if !d.quantSet[c.tq] {
			return fmt.Errorf("%w: missing quantisation table %d", ErrMalformed, c.tq)
		}
		c.pred = 0
	}
	br := &bitReader{data: d.data, pos: d.pos}
	var mcusX, mcusY int
	single := len(sc.comps) == 1
	if single {
		c := sc.comps[0]
		cw := (d.width*c.h + d.hmax - 1) / d.hmax
		ch := (d.height*c.v + d.vmax - 1) / d.vmax
		mcusX, mcusY = (cw+7)/8, (ch+7)/8
	} else {
		mcusX = (d.width + 8*d.hmax - 1) / (8 * d.hmax)
		mcusY = (d.height + 8*d.vmax - 1) / (8 * d.vmax)
	}
	maxV := int32(1)<<d.precision - 1
	shift := float64(int32(1) << (d.precision - 1))
	left := d.restart
	var blk [64]int32
	for my := range mcusY {
		for mx := range mcusX {
			if d.restart > 0 {
				if left == 0 {
					br.restart()
					left = d.restart
					for _, c := range sc.comps {
						c.pred = 0
					}
				}
				left--
			}
			for _, c := range sc.comps {
				bh, bv := c.h, c.v
				if single {
					bh, bv = 1, 1
				}
				for v := range bv {
					for h := range bh {
						if err := d.block(br, c, &blk); err != nil {
							return err
						}
						bx, by := mx*bh+h, my*bv+v
						if d.precision == 8 {
							idctInt(&blk, c.plane[by*8*c.stride+bx*8:], c.stride)
						} else {
							idct(&blk, c.plane[by*8*c.stride+bx*8:], c.stride, shift, maxV)
						}
					}
				}
			}
		}
	}
	d.pos = br.pos
	return nil
}

func (d *decoder) block(br *bitReader, c *component, blk *[64]int32) error {
	*blk = [64]int32{}
	q := &d.quant[c.tq]
	s, err := br.decode(d.dc[c.dcTable])
	if err != nil {
		return err
	}
	if s > 16 {
		return fmt.Errorf("%w: DC category %d", ErrMalformed, s)
	}
	c.pred += br.extend(uint(s))
	blk[0] = c.pred * q[0]
	ac := d.ac[c.acTable]
	for k := 1; k < 64; {
		rs, err := br.decode(ac)
		if err != nil {
			return err
		}
		r, s := rs>>4, rs&15
		if s == 0 {
			if r != 15 {
				break
			}
			k += 16
			continue
		}
		k += r
		if k > 63 {
			return fmt.Errorf("%w: coefficient index %d", ErrMalformed, k)
		}
		blk[zigzag[k]] = br.extend(uint(s)) * q[k]
		k++
	}
	return nil
}

// idct computes the inverse DCT of one 12-bit block (8-bit blocks use
// idctInt) in double precision, adds the level shift, rounds and clamps,
// and writes 8 rows of 8 at dst.
func idct(blk *[64]int32, dst []int32, stride int, shift float64, maxV int32) {
	var tmp [64]float64
	dcOnly := true
	for i := 1; i < 64; i++ {
		if blk[i] != 0 {
			dcOnly = false
			break
		}
	}
	put := func(x, y int, f float64) {
		v := int32(math.Floor(f + shift + 0.5))
		if v < 0 {
			v = 0
		} else if v > maxV {
			v = maxV
		}
		dst[y*stride+x] = v
	}
	if dcOnly {
		f := float64(blk[0]) / 8
		for y := range 8 {
			for x := range 8 {
				put(x, y, f)
			}
		}
		return
	}
	// Rows: tmp[v][x] = Σu T[x][u]·F[v][u].
	for v := range 8 {
		row := blk[v*8 : v*8+8]
		if row[0]|row[1]|row[2]|row[3]|row[4]|row[5]|row[6]|row[7] == 0 {
			continue
		}
		for x := range 8 {
			t := &idctTable[x]
			tmp[v*8+x] = t[0]*float64(row[0]) + t[1]*float64(row[1]) + t[2]*float64(row[2]) + t[3]*float64(row[3]) +
				t[4]*float64(row[4]) + t[5]*float64(row[5]) + t[6]*float64(row[6]) + t[7]*float64(row[7])
		}
	}
	// Columns: out[y][x] = Σv T[y][v]·tmp[v][x].
	for y := range 8 {
		t := &idctTable[y]
		for x := range 8 {
			f := t[0]*tmp[x] + t[1]*tmp[8+x] + t[2]*tmp[16+x] + t[3]*tmp[24+x] +
				t[4]*tmp[32+x] + t[5]*tmp[40+x] + t[6]*tmp[48+x] + t[7]*tmp[56+x]
			put(x, y, f)
		}
	}
}

// finishDCT upsamples subsampled components, converts colour and
// interleaves the samples.
func (d *decoder) finishDCT() (*Image, error) {
	nc := len(d.comps)
	img := &Image{Width: d.width, Height: d.height, Components: nc, Precision: d.precision, Process: d.process}
	img.Pix = make([]uint16, d.width*d.height*nc)
	full := make([]int32, d.width*d.height)
	for ci, c := range d.comps {
		d.upsample(c, full)
		for i, v := range full {
			img.Pix[i*nc+ci] = uint16(v)
		}
	}
	if nc == 3 && d.isYCbCr() {
		ycbcrToRGB(img.Pix, d.precision)
		img.ColorConverted = true
	}
	return img, nil
}

// isYCbCr applies the usual rules (JFIF, Adobe APP14, component ids) to
// decide whether three components are YCbCr.
func (d *decoder) isYCbCr() bool {
	switch d.lim.Color {
	case ColorYCbCr:
		return true
	case ColorRGB:
		return false
	case ColorJFIF:
		return d.jfif
	}
	switch {
	case d.jfif:
		return true
	case d.adobe:
		return d.adobeXform != 0
	case d.comps[0].id == 'R' && d.comps[1].id == 'G' && d.comps[2].id == 'B':
		return false
	}
	return true
}

// upsample writes component c at full resolution into out (width × height).
// 2:1 horizontal and 2:1×2:1 subsampling use triangle ("fancy")
// interpolation; other ratios replicate samples.
func (d *decoder) upsample(c *component, out []int32) {
	w, h := d.width, d.height
	fx, fy := d.hmax/c.h, d.vmax/c.v
	cw := (w*c.h + d.hmax - 1) / d.hmax // downsampled size
	ch := (h*c.v + d.vmax - 1) / d.vmax
	p, s := c.plane, c.stride
	switch {
	case fx == 1 && fy == 1:
		for y := range h {
			copy(out[y*w:y*w+w], p[y*s:y*s+w])
		}
		return
	case d.hmax%c.h == 0 && d.vmax%c.v == 0 && fx == 2 && fy == 1 && cw > 2:
		row := make([]int32, 2*cw)
		for y := range h {
			fancyRow(row, p[y*s:y*s+cw], nil)
			copy(out[y*w:y*w+w], row)
		}
		return
	case d.hmax%c.h == 0 && d.vmax%c.v == 0 && fx == 2 && fy == 2 && cw > 2:
		row := make([]int32, 2*cw)
		sum := make([]int32, cw)
		for y := range h {
			in := y / 2
			other := in - 1 // above for even output rows
			if y%2 == 1 {
				other = in + 1
			}
			other = max(0, min(other, ch-1))
			a, b := p[in*s:in*s+cw], p[other*s:other*s+cw]
			for i := range cw {
				sum[i] = 3*a[i] + b[i]
			}
			fancyRow(row, nil, sum)
			copy(out[y*w:y*w+w], row)
		}
		return
	}
	for y := range h {
		sy := min((y*c.v)/d.vmax, ch-1)
		for x := range w {
			sx := min((x*c.h)/d.hmax, cw-1)
			out[y*w+x] = p[sy*s+sx]
		}
	}
}

// fancyRow doubles a row horizontally with a 3:1 triangle filter. With in
// set it works on samples; with sum set on vertical sums 3·near + far
// (weights then total 16).
func fancyRow(out, in, sum []int32) {
	if in != nil {
		n := len(in)
		out[0] = in[0]
		out[1] = (3*in[0] + in[1] + 2) >> 2
		for i := 1; i < n-1; i++ {
			t := 3 * in[i]
			out[2*i] = (t + in[i-1] + 1) >> 2
			out[2*i+1] = (t + in[i+1] + 2) >> 2
		}
		out[2*n-2] = (3*in[n-1] + in[n-2] + 1) >> 2
		out[2*n-1] = in[n-1]
		return
	}
	n := len(sum)
	out[0] = (4*sum[0] + 8) >> 4
	out[1] = (3*sum[0] + sum[1] + 7) >> 4
	for i := 1; i < n-1; i++ {
		t := 3 * sum[i]
		out[2*i] = (t + sum[i-1] + 8) >> 4
		out[2*i+1] = (t + sum[i+1] + 7) >> 4
	}
	out[2*n-2] = (3*sum[n-1] + sum[n-2] + 8) >> 4
	out[2*n-1] = (4*sum[n-1] + 7) >> 4
}

// ycbcrToRGB converts interleaved YCbCr to RGB in place with the JFIF
// equations in 16-bit fixed point, rounding as the IJG library does.
func ycbcrToRGB(pix []uint16, precision int) {
	const (
		scale = 16
		half  = 1 << (scale - 1)
		crR   = 91881  // 1.40200 · 2^16
		cbG   = 22554  // 0.34414 · 2^16
		crG   = 46802  // 0.71414 · 2^16
		cbB   = 116130 // 1.77200 · 2^16
	)
	center := int64(1) << (precision - 1)
	maxV := int64(1)<<precision - 1
	clamp := func(v int64) uint16 { return uint16(max(0, min(v, maxV))) }
	for i := 0; i+2 < len(pix); i += 3 {
		y := int64(pix[i])
		cb := int64(pix[i+1]) - center
		cr := int64(pix[i+2]) - center
		r := y + (crR*cr+half)>>scale
		g := y + (-cbG*cb-crG*cr+half)>>scale
		b := y + (cbB*cb+half)>>scale
		pix[i], pix[i+1], pix[i+2] = clamp(r), clamp(g), clamp(b)
	}
}
