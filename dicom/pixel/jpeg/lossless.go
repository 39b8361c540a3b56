package jpeg

import "fmt"

// losslessScan decodes one lossless scan (T.81 Annex H): Huffman-coded
// differences to one of seven predictors, optionally point-transformed.
func (d *decoder) losslessScan(sc scan) error {
	psv, pt := sc.ss, sc.al
	if psv < 1 || psv > 7 {
		return fmt.Errorf("%w: lossless predictor %d", ErrMalformed, psv)
	}
	if pt >= d.precision {
		return fmt.Errorf("%w: point transform %d at precision %d", ErrMalformed, pt, d.precision)
	}
	nc := len(sc.comps)
	planes := make([][]uint16, nc)
	tables := make([]*huffman, nc)
	for i, c := range sc.comps {
		idx := d.index(c)
		if d.lossDone[idx] {
			return fmt.Errorf("%w: component %d in two scans", ErrMalformed, c.id)
		}
		d.lossDone[idx] = true
		planes[i] = d.lossPlanes[idx]
		tables[i] = d.dc[c.dcTable]
		if tables[i] == nil {
			return fmt.Errorf("%w: missing Huffman table %d", ErrMalformed, c.dcTable)
		}
		c.pred = int32(pt) // remembered for the output shift
	}
	br := &bitReader{data: d.data, pos: d.pos}
	w, h := d.width, d.height
	initPred := int32(1) << (d.precision - pt - 1)
	left := d.restart
	rRow, rCol := 0, 0 // where the current restart interval began
	for y := range h {
		row := y * w
		for x := range w {
			if d.restart > 0 {
				if left == 0 {
					br.restart()
					left = d.restart
					rRow, rCol = y, x
				}
				left--
			}
			i := row + x
			for ci := range nc {
				p := planes[ci]
				var pred int32
				switch {
				case y == rRow && x == rCol:
					pred = initPred
				case y == rRow:
					pred = int32(p[i-1])
				case x == 0:
					pred = int32(p[i-w])
				default:
					ra, rb, rc := int32(p[i-1]), int32(p[i-w]), int32(p[i-w-1])
					switch psv {
					case 1:
						pred = ra
					case 2:
						pred = rb
					case 3:
						pred = rc
					case 4:
						pred = ra + rb - rc
					case 5:
						pred = ra + (rb-rc)>>1
					case 6:
						pred = rb + (ra-rc)>>1
					case 7:
						pred = (ra + rb) >> 1
					}
				}
				s, err := br.decode(tables[ci])
				if err != nil {
					return fmt.Errorf("at sample %d,%d: %w", x, y, err)
				}
				var diff int32
				switch {
				case s == 16:
					diff = 32768
				case s > 16:
					return fmt.Errorf("%w: difference category %d", ErrMalformed, s)
				default:
					diff = br.extend(uint(s))
				}
				p[i] = uint16(pred + diff)
			}
		}
	}
	d.pos = br.pos
	return nil
}

func (d *decoder) index(c *component) int {
	for i, cc := range d.comps {
		if cc == c {
			return i
		}
	}
	return 0
}

func (d *decoder) finishLossless() (*Image, error) {
	for i, done := range d.lossDone {
		if !done {
			return nil, fmt.Errorf("%w: component %d never decoded", ErrMalformed, d.comps[i].id)
		}
	}
	nc := len(d.comps)
	img := &Image{Width: d.width, Height: d.height, Components: nc, Precision: d.precision, Process: 'L'}
	img.Pix = make([]uint16, d.width*d.height*nc)
	mask := uint16(1<<d.precision - 1)
	for ci, p := range d.lossPlanes {
		pt := uint(d.comps[ci].pred)
		for i, v := range p {
			img.Pix[i*nc+ci] = (v << pt) & mask
		}
	}
	return img, nil
}
