package header

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/molar-health/molar/dicom/uid"
)

// Encode encodes the data set in the given transfer syntax (no preamble, no
// meta), as a C-FIND identifier or a C-STORE data set body. Sequences and
// items are written with undefined length; text values are padded to even
// length. Binary values are byte-swapped when the data set's byte order
// differs from the target's. Compressed syntaxes encode as explicit VR little
// endian (their data set encoding); deflated is deflated.
func (d *Dataset) Encode(transferSyntax string) ([]byte, error) {
	var buf bytes.Buffer
	if err := d.WriteTo(&buf, transferSyntax); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteTo writes the encoding of Encode to w.
func (d *Dataset) WriteTo(w io.Writer, transferSyntax string) error {
	ts, _ := uid.LookupTransferSyntax(transferSyntax)
	var bo binary.ByteOrder = binary.LittleEndian
	if ts.BigEndian {
		bo = binary.BigEndian
	}
	enc := &encoder{explicit: ts.ExplicitVR, bo: bo}
	if ts.Deflated {
		fw, err := flate.NewWriter(w, flate.DefaultCompression)
		if err != nil {
			return fmt.Errorf("header: deflate: %w", err)
		}
		enc.w = fw
		if err := enc.dataset(d); err != nil {
			return err
		}
		if err := fw.Close(); err != nil {
			return fmt.Errorf("header: deflate: %w", err)
		}
		return nil
	}
	enc.w = w
	return enc.dataset(d)
}

type encoder struct {
	w        io.Writer
	explicit bool
	bo       binary.ByteOrder
	scratch  [12]byte
}

func (e *encoder) dataset(d *Dataset) error {
	for _, el := range d.Elements {
		if err := e.element(d, el); err != nil {
			return err
		}
	}
	return nil
}

func (e *encoder) write(b []byte) error {
	if _, err := e.w.Write(b); err != nil {
		return fmt.Errorf("header: write: %w", err)
	}
	return nil
}

func (e *encoder) header(t Tag, vr string, length uint32) error {
	b := e.scratch[:]
	e.bo.PutUint16(b[0:], t.Group())
	e.bo.PutUint16(b[2:], t.Element())
	if t == TagItem || t == TagItemDelimitation || t == TagSequenceDelimitation {
		e.bo.PutUint32(b[4:], length)
		return e.write(b[:8])
	}
	if !e.explicit {
		e.bo.PutUint32(b[4:], length)
		return e.write(b[:8])
	}
	if len(vr) != 2 {
		vr = "UN"
	}
	b[4], b[5] = vr[0], vr[1]
	if hasLongLength(vr) {
		b[6], b[7] = 0, 0
		e.bo.PutUint32(b[8:], length)
		return e.write(b[:12])
	}
	if length > 0xFFFF {
		return fmt.Errorf("header: value of %v too long for VR %s", t, vr)
	}
	e.bo.PutUint16(b[6:], uint16(length))
	return e.write(b[:8])
}

func (e *encoder) element(d *Dataset, el *Element) error {
	if el.Skipped() {
		return fmt.Errorf("header: %v: its value was left out of memory when read (SkipBulkOver) and cannot be written", el.Tag)
	}
	if el.Items != nil || el.VR == "SQ" {
		vr := el.VR
		if vr != "SQ" && vr != "UN" {
			vr = "SQ"
		}
		if err := e.header(el.Tag, vr, UndefinedLength); err != nil {
			return err
		}
		sub := e
		if vr == "UN" { // UN sequences are implicit VR little endian inside
			sub = &encoder{w: e.w, explicit: false, bo: binary.LittleEndian}
		}
		for _, it := range el.Items {
			if err := sub.header(TagItem, "", UndefinedLength); err != nil {
				return err
			}
			if err := sub.dataset(it); err != nil {
				return err
			}
			if err := sub.header(TagItemDelimitation, "", 0); err != nil {
				return err
			}
		}
		return e.header(TagSequenceDelimitation, "", 0)
	}
	if el.UndefinedLength { // raw encapsulated fragments
		if err := e.header(el.Tag, el.VR, UndefinedLength); err != nil {
			return err
		}
		if err := e.write(el.Value); err != nil {
			return err
		}
		return e.header(TagSequenceDelimitation, "", 0)
	}
	v := el.Value
	if d.BigEndian != (e.bo == binary.BigEndian) {
		v = Swap(el.VR, v)
	}
	pad := len(v)%2 == 1
	n := len(v)
	if pad {
		n++
	}
	if err := e.header(el.Tag, el.VR, uint32(n)); err != nil {
		return err
	}
	if err := e.write(v); err != nil {
		return err
	}
	if pad {
		p := byte(' ')
		switch el.VR {
		case "UI", "OB", "UN":
			p = 0
		}
		return e.write([]byte{p})
	}
	return nil
}

// Swap returns v with every binary unit of the VR byte-swapped (big endian
// to little endian and back); other VRs come back as they are.
func Swap(vr string, v []byte) []byte {
	size := 0
	switch vr {
	case "US", "SS", "OW", "AT":
		size = 2
	case "UL", "SL", "FL", "OF", "OL":
		size = 4
	case "FD", "OD", "SV", "UV", "OV":
		size = 8
	}
	if size == 0 {
		return v
	}
	out := make([]byte, len(v))
	copy(out, v)
	for i := 0; i+size <= len(out); i += size {
		for a, b := i, i+size-1; a < b; a, b = a+1, b-1 {
			out[a], out[b] = out[b], out[a]
		}
	}
	return out
}
