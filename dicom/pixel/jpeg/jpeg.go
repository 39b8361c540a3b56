// Package jpeg decodes the JPEG processes DICOM uses that Go's image/jpeg
// does not: extended sequential DCT with 12-bit samples (process 4,
// transfer syntax 1.2.840.10008.1.2.4.51) and lossless (process 14, all
// seven predictors incl. selection value 1, .57 and .70), besides 8-bit
// baseline (.50). It is written from ITU-T T.81 for this project.
//
// Decode works on one frame's complete bitstream held in memory. It is meant
// for untrusted input: the frame size in the SOF marker is checked against
// Limits before any allocation, every read is bounds-checked, and hostile
// data yields ErrMalformed or ErrUnsupported, never a panic or unbounded
// work (decoding is linear in the number of samples).
//
// Colour: a 3-component DCT image is converted from YCbCr to RGB as
// Options.Color says (by default unless its markers say it is RGB already:
// Adobe APP14 transform 0, or component ids 'R','G','B'), with chroma upsampled by triangle filtering for 2:1
// horizontal and 2:1×2:1 subsampling. 8-bit DCT images use the IJG library's
// integer IDCT, upsampling and fixed-point colour conversion, so they decode
// to the samples of DCMTK and GDCM (which embed that library); 12-bit ones
// use a double-precision IDCT, within ±1 of them. Lossless images are never
// converted.
package jpeg

import (
	"errors"
	"fmt"
)

var (
	// ErrMalformed: the bitstream is not valid JPEG.
	ErrMalformed = errors.New("jpeg: malformed bitstream")
	// ErrUnsupported: a valid JPEG process this package does not decode
	// (arithmetic coding, hierarchical, progressive with more than 8 bits).
	ErrUnsupported = errors.New("jpeg: unsupported")
	// ErrLimit: the image is larger than Limits allow.
	ErrLimit = errors.New("jpeg: limit exceeded")
)

// ColorMode decides whether three DCT components are converted from YCbCr
// to RGB.
type ColorMode int

const (
	// ColorAuto follows the markers: JFIF or an Adobe APP14 transform
	// flag say YCbCr; component ids 'R','G','B' say RGB; otherwise YCbCr.
	ColorAuto ColorMode = iota
	// ColorYCbCr always converts.
	ColorYCbCr
	// ColorRGB never converts.
	ColorRGB
	// ColorJFIF converts only when a JFIF marker declares YCbCr.
	ColorJFIF
)

// Options bound what Decode allocates and choose the colour conversion.
type Options struct {
	Color ColorMode
	// MaxSamples caps width × height × components (0 = 1<<28).
	MaxSamples int64
	// Width and Height, when not zero, must match the SOF marker (the size
	// the DICOM header promises).
	Width, Height int
}

// Image is a decoded frame.
type Image struct {
	Width, Height int
	Components    int
	// Precision is the sample precision of the frame in bits (2–16).
	Precision int
	// Process: 'B' baseline, 'E' extended sequential, 'P' progressive, 'L' lossless.
	Process byte
	// Pix holds the samples, pixel interleaved, row by row.
	Pix []uint16
	// ColorConverted: the YCbCr components were converted to RGB.
	ColorConverted bool
}

type component struct {
	id      byte
	h, v    int
	tq      int
	bw, bh  int // blocks per line / column in the component plane (DCT), or samples (lossless)
	plane   []int32
	stride  int
	pred    int32 // DC predictor
	dcTable int
	acTable int
}

type decoder struct {
	data       []byte
	pos        int
	lim        Options
	width      int
	height     int
	precision  int
	process    byte
	comps      []*component
	hmax, vmax int
	quant      [4][64]int32
	quantSet   [4]bool
	dc, ac     [4]*huffman
	restart    int
	adobe      bool
	adobeXform int
	jfif       bool
	frameSeen  bool
	scans      int
	eoi        bool
	lossDone   []bool // lossless: components decoded
	lossPlanes [][]uint16
}

// Decode decodes one JPEG bitstream (SOI … EOI).
func Decode(data []byte, lim Options) (img *Image, err error) {
	defer func() {
		if p := recover(); p != nil {
			img, err = nil, fmt.Errorf("%w: internal error: %v", ErrMalformed, p)
		}
	}()
	if lim.MaxSamples <= 0 {
		lim.MaxSamples = 1 << 28
	}
	d := &decoder{data: data, lim: lim}
	return d.decode()
}

func (d *decoder) u16() (int, error) {
	if d.pos+2 > len(d.data) {
		return 0, fmt.Errorf("%w: unexpected end of data", ErrMalformed)
	}
	v := int(d.data[d.pos])<<8 | int(d.data[d.pos+1])
	d.pos += 2
	return v, nil
}

// segment returns the payload of a marker segment (after its length).
func (d *decoder) segment() ([]byte, error) {
	n, err := d.u16()
	if err != nil {
		return nil, err
	}
	if n < 2 || d.pos+n-2 > len(d.data) {
		return nil, fmt.Errorf("%w: segment length %d", ErrMalformed, n)
	}
	s := d.data[d.pos : d.pos+n-2]
	d.pos += n - 2
	return s, nil
}

// nextMarker skips to the next marker (tolerating garbage and fill bytes).
func (d *decoder) nextMarker() (byte, error) {
	for {
		for d.pos < len(d.data) && d.data[d.pos] != 0xFF {
			d.pos++
		}
		for d.pos < len(d.data) && d.data[d.pos] == 0xFF {
			d.pos++
		}
		if d.pos >= len(d.data) {
			return 0, fmt.Errorf("%w: no EOI marker", ErrMalformed)
		}
		m := d.data[d.pos]
		d.pos++
		if m != 0 {
			return m, nil
		}
	}
}

func (d *decoder) decode() (*Image, error) {
	if len(d.data) < 4 || d.data[0] != 0xFF || d.data[1] != 0xD8 {
		return nil, fmt.Errorf("%w: no SOI marker", ErrMalformed)
	}
	d.pos = 2
	for !d.eoi {
		m, err := d.nextMarker()
		if err != nil {
			if d.scans > 0 && d.frameSeen {
				break // tolerate a missing EOI after complete scans
			}
			return nil, err
		}
		switch {
		case m == 0xD9:
			d.eoi = true
		case m == 0xC0 || m == 0xC1 || m == 0xC3:
			if err := d.sof(m); err != nil {
				return nil, err
			}
		case m == 0xC2:
			return nil, fmt.Errorf("%w: progressive JPEG", ErrUnsupported)
		case m >= 0xC5 && m <= 0xCF && m != 0xC8 && m != 0xCC:
			return nil, fmt.Errorf("%w: JPEG process with SOF%d", ErrUnsupported, m-0xC0)
		case m == 0xC4:
			if err := d.dht(); err != nil {
				return nil, err
			}
		case m == 0xDB:
			if err := d.dqt(); err != nil {
				return nil, err
			}
		case m == 0xDD:
			s, err := d.segment()
			if err != nil {
				return nil, err
			}
			if len(s) < 2 {
				return nil, fmt.Errorf("%w: DRI", ErrMalformed)
			}
			d.restart = int(s[0])<<8 | int(s[1])
		case m == 0xDA:
			if err := d.sos(); err != nil {
				return nil, err
			}
		case m == 0xE0:
			s, err := d.segment()
			if err != nil {
				return nil, err
			}
			if len(s) >= 5 && string(s[:5]) == "JFIF\x00" {
				d.jfif = true
			}
		case m == 0xEE:
			s, err := d.segment()
			if err != nil {
				return nil, err
			}
			if len(s) >= 12 && string(s[:5]) == "Adobe" {
				d.adobe, d.adobeXform = true, int(s[11])
			}
		case m >= 0xD0 && m <= 0xD7, m == 0x01:
			// stray RST or TEM: no segment
		case m == 0xDC:
			return nil, fmt.Errorf("%w: DNL marker", ErrUnsupported)
		default:
			if _, err := d.segment(); err != nil { // APPn, COM, others
				return nil, err
			}
		}
	}
	if !d.frameSeen || d.scans == 0 {
		return nil, fmt.Errorf("%w: no frame or scan", ErrMalformed)
	}
	if d.process == 'L' {
		return d.finishLossless()
	}
	return d.finishDCT()
}

func (d *decoder) sof(m byte) error {
	if d.frameSeen {
		return fmt.Errorf("%w: second SOF marker", ErrUnsupported)
	}
	s, err := d.segment()
	if err != nil {
		return err
	}
	if len(s) < 6 {
		return fmt.Errorf("%w: SOF too short", ErrMalformed)
	}
	d.frameSeen = true
	d.precision = int(s[0])
	d.height = int(s[1])<<8 | int(s[2])
	d.width = int(s[3])<<8 | int(s[4])
	nc := int(s[5])
	switch m {
	case 0xC0:
		d.process = 'B'
	case 0xC1:
		d.process = 'E'
	default:
		d.process = 'L'
	}
	switch {
	case d.process == 'L' && (d.precision < 2 || d.precision > 16):
		return fmt.Errorf("%w: lossless precision %d", ErrMalformed, d.precision)
	case d.process != 'L' && d.precision != 8 && d.precision != 12:
		return fmt.Errorf("%w: DCT precision %d", ErrMalformed, d.precision)
	case d.height == 0:
		return fmt.Errorf("%w: height 0 (DNL)", ErrUnsupported)
	case d.width == 0:
		return fmt.Errorf("%w: width 0", ErrMalformed)
	case nc != 1 && nc != 3:
		return fmt.Errorf("%w: %d components", ErrUnsupported, nc)
	case len(s) < 6+3*nc:
		return fmt.Errorf("%w: SOF too short", ErrMalformed)
	case d.lim.Width != 0 && d.width != d.lim.Width, d.lim.Height != 0 && d.height != d.lim.Height:
		return fmt.Errorf("%w: JPEG frame %d×%d, header says %d×%d", ErrMalformed, d.width, d.height, d.lim.Width, d.lim.Height)
	case int64(d.width)*int64(d.height)*int64(nc) > d.lim.MaxSamples:
		return fmt.Errorf("%w: %d×%d×%d samples", ErrLimit, d.width, d.height, nc)
	}
	d.hmax, d.vmax = 1, 1
	for i := range nc {
		c := &component{id: s[6+3*i], h: int(s[7+3*i] >> 4), v: int(s[7+3*i] & 15), tq: int(s[8+3*i])}
		if c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4 || c.tq > 3 {
			return fmt.Errorf("%w: component sampling %d×%d, table %d", ErrMalformed, c.h, c.v, c.tq)
		}
		for _, o := range d.comps {
			if o.id == c.id {
				return fmt.Errorf("%w: duplicate component id %d", ErrMalformed, c.id)
			}
		}
		d.hmax, d.vmax = max(d.hmax, c.h), max(d.vmax, c.v)
		d.comps = append(d.comps, c)
	}
	if d.process == 'L' {
		for _, c := range d.comps {
			if c.h != 1 || c.v != 1 {
				// Subsampled lossless is legal but unseen in DICOM.
				return fmt.Errorf("%w: subsampled lossless JPEG", ErrUnsupported)
			}
		}
		d.lossPlanes = make([][]uint16, nc)
		d.lossDone = make([]bool, nc)
		for i := range d.lossPlanes {
			d.lossPlanes[i] = make([]uint16, d.width*d.height)
		}
		return nil
	}
	mcusX := (d.width + 8*d.hmax - 1) / (8 * d.hmax)
	mcusY := (d.height + 8*d.vmax - 1) / (8 * d.vmax)
	for _, c := range d.comps {
		c.bw, c.bh = mcusX*c.h, mcusY*c.v
		c.stride = c.bw * 8
		c.plane = make([]int32, c.stride*c.bh*8)
	}
	return nil
}

func (d *decoder) dqt() error {
	s, err := d.segment()
	if err != nil {
		return err
	}
	for len(s) > 0 {
		pq, tq := int(s[0]>>4), int(s[0]&15)
		if tq > 3 || pq > 1 {
			return fmt.Errorf("%w: DQT table %d precision %d", ErrMalformed, tq, pq)
		}
		s = s[1:]
		n := 64 * (pq + 1)
		if len(s) < n {
			return fmt.Errorf("%w: DQT too short", ErrMalformed)
		}
		for k := range 64 {
			if pq == 0 {
				d.quant[tq][k] = int32(s[k])
			} else {
				d.quant[tq][k] = int32(s[2*k])<<8 | int32(s[2*k+1])
			}
		}
		d.quantSet[tq] = true
		s = s[n:]
	}
	return nil
}

func (d *decoder) dht() error {
	s, err := d.segment()
	if err != nil {
		return err
	}
	for len(s) > 0 {
		if len(s) < 17 {
			return fmt.Errorf("%w: DHT too short", ErrMalformed)
		}
		tc, th := int(s[0]>>4), int(s[0]&15)
		if tc > 1 || th > 3 {
			return fmt.Errorf("%w: DHT class %d id %d", ErrMalformed, tc, th)
		}
		var counts [16]int
		total := 0
		for i := range 16 {
			counts[i] = int(s[1+i])
			total += counts[i]
		}
		if total > 256 || len(s) < 17+total {
			return fmt.Errorf("%w: DHT with %d codes", ErrMalformed, total)
		}
		h, err := newHuffman(counts, s[17:17+total])
		if err != nil {
			return err
		}
		if tc == 0 {
			d.dc[th] = h
		} else {
			d.ac[th] = h
		}
		s = s[17+total:]
	}
	return nil
}

type scan struct {
	comps  []*component
	ss, se int
	ah, al int
}

func (d *decoder) sos() error {
	if !d.frameSeen {
		return fmt.Errorf("%w: SOS before SOF", ErrMalformed)
	}
	s, err := d.segment()
	if err != nil {
		return err
	}
	if len(s) < 1 {
		return fmt.Errorf("%w: SOS too short", ErrMalformed)
	}
	ns := int(s[0])
	if ns < 1 || ns > 4 || len(s) < 1+2*ns+3 {
		return fmt.Errorf("%w: SOS with %d components", ErrMalformed, ns)
	}
	sc := scan{}
	for i := range ns {
		id, tables := s[1+2*i], s[2+2*i]
		var c *component
		for _, cc := range d.comps {
			if cc.id == id {
				c = cc
			}
		}
		if c == nil {
			return fmt.Errorf("%w: scan names unknown component %d", ErrMalformed, id)
		}
		c.dcTable, c.acTable = int(tables>>4), int(tables&15)
		if c.dcTable > 3 || c.acTable > 3 {
			return fmt.Errorf("%w: table selector", ErrMalformed)
		}
		sc.comps = append(sc.comps, c)
	}
	p := s[1+2*ns:]
	sc.ss, sc.se, sc.ah, sc.al = int(p[0]), int(p[1]), int(p[2]>>4), int(p[2]&15)
	d.scans++
	if d.process == 'L' {
		return d.losslessScan(sc)
	}
	// Ss, Se, Ah and Al are fixed in sequential scans; some encoders write
	// other values, which decoders ignore.
	if ns > 1 {
		blocks := 0
		for _, c := range sc.comps {
			blocks += c.h * c.v
		}
		if blocks > 10 {
			return fmt.Errorf("%w: %d blocks per MCU", ErrMalformed, blocks)
		}
	}
	return d.dctScan(sc)
}
