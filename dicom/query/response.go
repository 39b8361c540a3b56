package query

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/molar-health/molar/dicom/header"
)

// Charset says how text is encoded in responses: ISO_IR 100 (Latin-1) when
// the requester asked in it, else UTF-8 (ISO_IR 192).
type Charset int

const (
	UTF8 Charset = iota
	Latin1
)

// CharsetOf picks the response character set for a request.
func CharsetOf(d *header.Dataset) Charset {
	for _, cs := range d.Strings(TagSpecificCharacterSet) {
		if cs == "ISO_IR 100" || cs == "ISO 2022 IR 100" {
			return Latin1
		}
	}
	return UTF8
}

func setText(d *header.Dataset, t header.Tag, vr, v string, cs Charset) {
	if cs == Latin1 {
		d.Set(&header.Element{Tag: t, VR: vr, Value: header.EncodeLatin1(v)})
		return
	}
	d.SetString(t, vr, v)
}

// Response renders a match as a C-FIND response identifier: the request's
// keys (unsupported ones empty), the unique keys of the level and above,
// the level and the character set.
func (q *Query) Response(m *Match, cs Charset, retrieveAE string) *header.Dataset {
	d := header.NewDataset()
	if cs == Latin1 {
		d.SetString(TagSpecificCharacterSet, "CS", "ISO_IR 100")
	} else {
		d.SetString(TagSpecificCharacterSet, "CS", "ISO_IR 192")
	}
	d.SetString(TagQueryRetrieveLevel, "CS", q.Level.String())
	for t, v := range m.Values {
		setText(d, t, header.DictionaryVR(t), v, cs)
	}
	for _, k := range q.Keys {
		if d.Has(k.Tag) {
			continue
		}
		vr := header.DictionaryVR(k.Tag)
		switch {
		case k.Tag == TagRetrieveAETitle:
			d.SetString(k.Tag, "AE", retrieveAE)
		case k.Tag == TagInstanceAvailability:
			d.SetString(k.Tag, "CS", "ONLINE")
		case m.Sequences[k.Tag] != nil:
			d.SetSequence(k.Tag, m.Sequences[k.Tag]...)
		default:
			if avr, v, items, ok := m.Attr(k.Tag); ok {
				if avr == "SQ" {
					d.SetSequence(k.Tag, jsonItems(items, cs)...)
				} else {
					setText(d, k.Tag, avr, v, cs)
				}
				continue
			}
			if vr == "SQ" || k.Items != nil {
				d.SetSequence(k.Tag)
			} else {
				d.Set(&header.Element{Tag: k.Tag, VR: vr})
			}
		}
	}
	return d
}

// jsonItems converts DICOM JSON items (text values) to data sets.
func jsonItems(items []map[string]json.RawMessage, cs Charset) []*header.Dataset {
	var out []*header.Dataset
	for _, it := range items {
		d := header.NewDataset()
		for k, raw := range it {
			var t uint32
			if _, err := fmtSscanHex(k, &t); err != nil {
				continue
			}
			m := &Match{attrs: mustJSON(map[string]json.RawMessage{k: raw})}
			vr, v, sub, ok := m.Attr(header.Tag(t))
			if !ok {
				continue
			}
			if vr == "SQ" {
				d.SetSequence(header.Tag(t), jsonItems(sub, cs)...)
				continue
			}
			switch vr {
			case "US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "AT", "OB", "OW", "OD", "OF", "OL", "OV", "UN":
				continue // binary: not rebuilt from JSON
			}
			if bytes.Contains(raw, []byte(`"BulkDataURI"`)) {
				continue // kept in the object only: left out, not sent empty
			}
			setText(d, header.Tag(t), vr, v, cs)
		}
		out = append(out, d)
	}
	return out
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func fmtSscanHex(s string, t *uint32) (int, error) {
	var v uint32
	if len(s) != 8 {
		return 0, ErrInvalid
	}
	for _, c := range strings.ToUpper(s) {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint32(c-'0')
		case c >= 'A' && c <= 'F':
			v = v<<4 | uint32(c-'A'+10)
		default:
			return 0, ErrInvalid
		}
	}
	*t = v
	return 1, nil
}
