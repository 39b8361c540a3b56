package jpeg

// The 8-bit inverse DCT in integer arithmetic, computed the way the IJG
// library's default method ("islow", JDCT_ISLOW) computes it, so that our
// samples are the reference decoders' samples and not merely close to
// them. DCMTK's dcmdjpeg and GDCM embed that library and use that method.
// The IJG documentation describes the method in words: a separable
// Loeffler–Ligtenberg–Moschytz factorisation (C. Loeffler, A. Ligtenberg,
// G. Moschytz, "Practical fast 1-D DCT algorithms with 11 multiplications",
// ICASSP 1989: 12 multiplications and 32 additions per 1-D pass), constants
// scaled by 2^13 and rounded, the columns first with their results kept
// with 2 extra fractional bits, then the rows, each result rounded to
// nearest (ties upward) once at the end of each pass. A float IDCT rounds
// only once, which differs from this by ±1 on a few percent of samples;
// three such ±1 in Y, Cb and Cr become up to ±3 in RGB.
//
// The constants are √2·cos(kπ/16) combinations (ck = cos(kπ/16)):
const (
	idctBits  = 13 // fractional bits of the constants
	idctPass1 = 2  // extra fractional bits kept between the passes (8-bit)

	fix0_298631336 = 2446  // √2(−c1+c3+c5−c7)
	fix0_390180644 = 3196  // √2(c5−c3) negated
	fix0_541196100 = 4433  // √2·c6
	fix0_765366865 = 6270  // √2(c2−c6)
	fix0_899976223 = 7373  // √2(c7−c3) negated
	fix1_175875602 = 9633  // √2·c3
	fix1_501321110 = 12299 // √2(c1+c3−c5−c7)
	fix1_847759065 = 15137 // √2(c2+c6)
	fix1_961570560 = 16069 // √2(c3+c5) (negated where used)
	fix2_053119869 = 16819 // √2(c1+c3−c5+c7)
	fix2_562915447 = 20995 // √2(c1+c3) (negated where used)
	fix3_072711026 = 25172 // √2(c1+c3+c5−c7)
)

// idct1D is one 1-D pass over 8 values in[0], in[s], … in[7s] (already
// scaled) and returns the 8 outputs scaled by 2^idctBits, not yet rounded.
func idct1D(i0, i1, i2, i3, i4, i5, i6, i7 int) (o0, o1, o2, o3, o4, o5, o6, o7 int) {
	// Even part: the 4-point IDCT of i0, i2, i4, i6 with a rotation of
	// (i2, i6) by 3π/8.
	z1 := (i2 + i6) * fix0_541196100
	e2 := z1 - i6*fix1_847759065
	e3 := z1 + i2*fix0_765366865
	e0 := (i0 + i4) << idctBits
	e1 := (i0 - i4) << idctBits
	t10, t13 := e0+e3, e0-e3
	t11, t12 := e1+e2, e1-e2

	// Odd part: i7, i5, i3, i1 through the shared rotation by 3π/16 and
	// four butterflies.
	a, b, c, d := i7, i5, i3, i1
	y1, y2, y3, y4 := a+d, b+c, a+c, b+d
	z5 := (y3 + y4) * fix1_175875602
	a *= fix0_298631336
	b *= fix2_053119869
	c *= fix3_072711026
	d *= fix1_501321110
	y1 *= -fix0_899976223
	y2 *= -fix2_562915447
	y3 = y3*-fix1_961570560 + z5
	y4 = y4*-fix0_390180644 + z5
	a += y1 + y3
	b += y2 + y4
	c += y2 + y3
	d += y1 + y4

	return t10 + d, t11 + c, t12 + b, t13 + a, t13 - a, t12 - b, t11 - c, t10 - d
}

// idctInt computes the 8-bit inverse DCT of a dequantised block in natural
// order, adds the level shift 128, clamps to 0–255 and writes 8 rows of 8
// at dst with the given stride.
func idctInt(blk *[64]int32, dst []int32, stride int) {
	_ = dst[7*stride+7]
	// Blocks with only a DC coefficient (common) give one value.
	ac := int32(0)
	for _, v := range blk[1:] {
		ac |= v
	}
	if ac == 0 {
		v := clamp8((int(blk[0])<<idctPass1+1<<(idctPass1+2))>>(idctPass1+3) + 128)
		for y := range 8 {
			r := dst[y*stride : y*stride+8]
			r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7] = v, v, v, v, v, v, v, v
		}
		return
	}

	// Pass 1: columns, into ws with idctPass1 extra fractional bits.
	var ws [64]int
	const (
		sh1 = idctBits - idctPass1
		rd1 = 1 << (sh1 - 1)
	)
	for x := range 8 {
		if blk[8+x]|blk[16+x]|blk[24+x]|blk[32+x]|blk[40+x]|blk[48+x]|blk[56+x] == 0 {
			// Only the DC term: the pass gives the same value 8 times
			// (exactly what the full computation would give).
			v := int(blk[x]) << idctPass1
			for y := range 8 {
				ws[y*8+x] = v
			}
			continue
		}
		o0, o1, o2, o3, o4, o5, o6, o7 := idct1D(int(blk[x]), int(blk[8+x]), int(blk[16+x]), int(blk[24+x]),
			int(blk[32+x]), int(blk[40+x]), int(blk[48+x]), int(blk[56+x]))
		ws[x] = (o0 + rd1) >> sh1
		ws[8+x] = (o1 + rd1) >> sh1
		ws[16+x] = (o2 + rd1) >> sh1
		ws[24+x] = (o3 + rd1) >> sh1
		ws[32+x] = (o4 + rd1) >> sh1
		ws[40+x] = (o5 + rd1) >> sh1
		ws[48+x] = (o6 + rd1) >> sh1
		ws[56+x] = (o7 + rd1) >> sh1
	}

	// Pass 2: rows, removing the constants' scale, the extra bits and the
	// 8 of the 2-D DCT's normalisation, then level shift and clamp.
	const (
		sh2 = idctBits + idctPass1 + 3
		rd2 = 1 << (sh2 - 1)
	)
	for y := range 8 {
		w := ws[y*8 : y*8+8 : y*8+8]
		r := dst[y*stride : y*stride+8 : y*stride+8]
		if w[1]|w[2]|w[3]|w[4]|w[5]|w[6]|w[7] == 0 {
			v := clamp8((w[0]+1<<(idctPass1+2))>>(idctPass1+3) + 128)
			r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7] = v, v, v, v, v, v, v, v
			continue
		}
		o0, o1, o2, o3, o4, o5, o6, o7 := idct1D(w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7])
		r[0] = clamp8((o0+rd2)>>sh2 + 128)
		r[1] = clamp8((o1+rd2)>>sh2 + 128)
		r[2] = clamp8((o2+rd2)>>sh2 + 128)
		r[3] = clamp8((o3+rd2)>>sh2 + 128)
		r[4] = clamp8((o4+rd2)>>sh2 + 128)
		r[5] = clamp8((o5+rd2)>>sh2 + 128)
		r[6] = clamp8((o6+rd2)>>sh2 + 128)
		r[7] = clamp8((o7+rd2)>>sh2 + 128)
	}
}

func clamp8(v int) int32 {
	return int32(max(0, min(v, 255)))
}
