package header

import (
	"encoding/binary"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// UndefinedLength is the value length marking undefined-length sequences and
// items (and encapsulated pixel data).
const UndefinedLength = 0xFFFFFFFF

// Element is one data element as read from (or to be written to) a data set.
type Element struct {
	Tag Tag
	// VR is the two-letter value representation: the explicit VR from the
	// stream, or the dictionary VR for implicit VR data sets ("UN" if unknown).
	VR string
	// Value holds the raw value bytes exactly as encoded, in the byte order of
	// the data set (see Dataset.BigEndian); nil for sequences.
	Value []byte
	// Items holds the items of a sequence (VR SQ, or UN/implicit elements
	// that were encoded as undefined-length sequences).
	Items []*Dataset
	// UndefinedLength records that the sequence was encoded with undefined
	// length (informational; the writer always uses undefined length for
	// sequences).
	UndefinedLength bool
	// BulkLength and BulkOffset describe a value left out of memory by
	// Options.SkipBulkOver (Value is nil then): its length and where it
	// starts in the stream (in the inflated stream for deflated data sets).
	BulkLength uint32
	BulkOffset int64
}

// Skipped reports whether the element's value was left out of memory
// (Options.SkipBulkOver).
func (e *Element) Skipped() bool { return e.BulkLength > 0 && e.Value == nil }

// IsSequence reports whether the element carries items.
func (e *Element) IsSequence() bool { return e.VR == "SQ" || e.Items != nil }

// Dataset is an ordered list of elements, as read from a stream or built to be
// encoded. Elements read from a stream keep the stream's order; Set keeps
// ascending tag order.
type Dataset struct {
	Elements []*Element
	// BigEndian is true when binary values in Value are big endian (data set
	// read from explicit VR big endian).
	BigEndian bool
	// charset is the Specific Character Set in force for this data set
	// (inherited by sequence items unless they carry their own).
	charset []string
}

// NewDataset returns an empty little endian data set.
func NewDataset() *Dataset { return &Dataset{} }

// Find returns the element with the tag at the top level, or nil.
func (d *Dataset) Find(t Tag) *Element {
	if d == nil {
		return nil
	}
	for _, e := range d.Elements {
		if e.Tag == t {
			return e
		}
	}
	return nil
}

// Has reports whether the tag is present (possibly empty).
func (d *Dataset) Has(t Tag) bool { return d.Find(t) != nil }

// Remove deletes an element; it reports whether it was present.
func (d *Dataset) Remove(t Tag) bool {
	for i, e := range d.Elements {
		if e.Tag == t {
			d.Elements = append(d.Elements[:i], d.Elements[i+1:]...)
			return true
		}
	}
	return false
}

// Set inserts or replaces an element, keeping ascending tag order.
func (d *Dataset) Set(e *Element) {
	i := sort.Search(len(d.Elements), func(i int) bool { return d.Elements[i].Tag >= e.Tag })
	if i < len(d.Elements) && d.Elements[i].Tag == e.Tag {
		d.Elements[i] = e
		return
	}
	d.Elements = append(d.Elements, nil)
	copy(d.Elements[i+1:], d.Elements[i:])
	d.Elements[i] = e
}

// SetString sets a text element. Values are stored as given (UTF-8 text needs
// Specific Character Set "ISO_IR 192"; use EncodeText for Latin-1) and padded
// to even length (NUL for UI, space otherwise) when encoded.
func (d *Dataset) SetString(t Tag, vr string, values ...string) {
	d.Set(&Element{Tag: t, VR: vr, Value: []byte(strings.Join(values, `\`))})
}

// SetUint16 sets a US element in the data set's byte order.
func (d *Dataset) SetUint16(t Tag, values ...uint16) {
	b := make([]byte, 2*len(values))
	for i, v := range values {
		d.order().PutUint16(b[2*i:], v)
	}
	d.Set(&Element{Tag: t, VR: "US", Value: b})
}

// SetUint32 sets a UL element in the data set's byte order.
func (d *Dataset) SetUint32(t Tag, values ...uint32) {
	b := make([]byte, 4*len(values))
	for i, v := range values {
		d.order().PutUint32(b[4*i:], v)
	}
	d.Set(&Element{Tag: t, VR: "UL", Value: b})
}

// SetSequence sets a sequence element with the given items.
func (d *Dataset) SetSequence(t Tag, items ...*Dataset) {
	if items == nil {
		items = []*Dataset{}
	}
	d.Set(&Element{Tag: t, VR: "SQ", Items: items})
}

func (d *Dataset) order() binary.ByteOrder {
	if d.BigEndian {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

// CharacterSets returns the Specific Character Set terms in force.
func (d *Dataset) CharacterSets() []string {
	if d == nil {
		return nil
	}
	return d.charset
}

// textVRs are the VRs whose values are character strings.
func isTextVR(vr string) bool {
	switch vr {
	case "AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT":
		return true
	}
	return false
}

// Raw returns the raw bytes of the element and whether it exists.
func (d *Dataset) Raw(t Tag) ([]byte, bool) {
	e := d.Find(t)
	if e == nil {
		return nil, false
	}
	return e.Value, true
}

// String returns the value of a text element decoded to UTF-8 according to
// the Specific Character Set, with trailing padding (spaces and NULs) and,
// except for LT/ST/UT, leading spaces removed. Multiple values stay joined by
// backslashes. ok is false when the element is absent.
func (d *Dataset) String(t Tag) (s string, ok bool) {
	e := d.Find(t)
	if e == nil {
		return "", false
	}
	return d.decodeText(e), true
}

// Get is String without the presence flag.
func (d *Dataset) Get(t Tag) string {
	s, _ := d.String(t)
	return s
}

// Strings returns the values of a multi-valued text element.
func (d *Dataset) Strings(t Tag) []string {
	e := d.Find(t)
	if e == nil {
		return nil
	}
	s := d.decodeText(e)
	if s == "" {
		return nil
	}
	parts := strings.Split(s, `\`)
	for i := range parts {
		parts[i] = strings.TrimSpace(strings.TrimRight(parts[i], "\x00"))
	}
	return parts
}

// UID returns a UI value without padding.
func (d *Dataset) UID(t Tag) string {
	e := d.Find(t)
	if e == nil {
		return ""
	}
	return strings.TrimSpace(strings.TrimRight(string(e.Value), "\x00 "))
}

func (d *Dataset) decodeText(e *Element) string {
	v := e.Value
	switch e.VR {
	case "LT", "ST", "UT":
		v = trimRight(v)
	default:
		v = trimRight(v)
		for len(v) > 0 && v[0] == ' ' {
			v = v[1:]
		}
	}
	switch e.VR {
	case "SH", "LO", "ST", "LT", "PN", "UC", "UT":
		return DecodeText(d.charset, v)
	}
	return DecodeText(nil, v)
}

func trimRight(v []byte) []byte {
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == 0) {
		v = v[:len(v)-1]
	}
	return v
}

// DecodeText converts bytes in the given Specific Character Set to a Go
// (UTF-8) string. ISO_IR 100 (Latin-1) is converted; ISO_IR 192 is UTF-8.
// Other and unknown character sets are passed through unchanged when the
// bytes are valid UTF-8 and otherwise decoded as Latin-1, so text never turns
// into invalid strings.
func DecodeText(charsets []string, b []byte) string {
	latin1 := false
	for _, cs := range charsets {
		switch strings.TrimSpace(cs) {
		case "ISO_IR 100", "ISO 2022 IR 100":
			latin1 = true
		case "ISO_IR 192":
			return strings.ToValidUTF8(string(b), "\uFFFD")
		}
	}
	if !latin1 {
		if utf8.Valid(b) {
			return string(b)
		}
		latin1 = true
	}
	ascii := true
	for _, c := range b {
		if c >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return string(b)
	}
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// EncodeLatin1 converts a UTF-8 string to ISO_IR 100 bytes; characters
// outside Latin-1 become '?'.
func EncodeLatin1(s string) []byte {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xFF {
			out = append(out, '?')
		} else {
			out = append(out, byte(r))
		}
	}
	return out
}

// Int returns the first value of a binary integer (US, SS, UL, SL, UV, SV) or
// integer string (IS) element.
func (d *Dataset) Int(t Tag) (int64, bool) {
	vs := d.Ints(t)
	if len(vs) == 0 {
		return 0, false
	}
	return vs[0], true
}

// Ints returns all values of an integer element.
func (d *Dataset) Ints(t Tag) []int64 {
	e := d.Find(t)
	if e == nil {
		return nil
	}
	o := d.order()
	v := e.Value
	var out []int64
	switch e.VR {
	case "US":
		for ; len(v) >= 2; v = v[2:] {
			out = append(out, int64(o.Uint16(v)))
		}
	case "SS":
		for ; len(v) >= 2; v = v[2:] {
			out = append(out, int64(int16(o.Uint16(v))))
		}
	case "UL":
		for ; len(v) >= 4; v = v[4:] {
			out = append(out, int64(o.Uint32(v)))
		}
	case "SL":
		for ; len(v) >= 4; v = v[4:] {
			out = append(out, int64(int32(o.Uint32(v))))
		}
	case "UV", "SV":
		for ; len(v) >= 8; v = v[8:] {
			out = append(out, int64(o.Uint64(v)))
		}
	case "IS", "DS", "UN", "LO", "SH", "CS":
		for _, s := range d.Strings(t) {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				out = append(out, n)
			} else if f, err := strconv.ParseFloat(s, 64); err == nil && e.VR == "DS" {
				out = append(out, int64(f))
			}
		}
	}
	return out
}

// Floats returns the values of FL, FD or DS elements.
func (d *Dataset) Floats(t Tag) []float64 {
	e := d.Find(t)
	if e == nil {
		return nil
	}
	o := d.order()
	v := e.Value
	var out []float64
	switch e.VR {
	case "FL", "OF":
		for ; len(v) >= 4; v = v[4:] {
			out = append(out, float64(math.Float32frombits(o.Uint32(v))))
		}
	case "FD", "OD":
		for ; len(v) >= 8; v = v[8:] {
			out = append(out, math.Float64frombits(o.Uint64(v)))
		}
	default:
		for _, s := range d.Strings(t) {
			if f, err := strconv.ParseFloat(s, 64); err == nil {
				out = append(out, f)
			}
		}
	}
	return out
}

// Sequence returns the items of a sequence element (nil if absent).
func (d *Dataset) Sequence(t Tag) []*Dataset {
	e := d.Find(t)
	if e == nil {
		return nil
	}
	return e.Items
}

// Walk calls fn for every element, depth first, including the elements of
// sequence items. depth is 0 at the top level. Returning false stops the walk.
func (d *Dataset) Walk(fn func(depth int, e *Element) bool) {
	d.walk(0, fn)
}

func (d *Dataset) walk(depth int, fn func(int, *Element) bool) bool {
	if d == nil {
		return true
	}
	for _, e := range d.Elements {
		if !fn(depth, e) {
			return false
		}
		for _, it := range e.Items {
			if !it.walk(depth+1, fn) {
				return false
			}
		}
	}
	return true
}
