package ingest

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/molar-health/molar/dicom/header"
)

// maxAttrValue caps a text value copied into the JSON attributes; longer
// values (and every binary value) stay only in the object.
const maxAttrValue = 4096

// maxAttrNumbers caps the numbers of one binary-number element (US, FL …)
// and maxInlineBinary the bytes of one OB/OW/UN … element copied into the
// attributes; longer values are left out of them.
const (
	maxAttrNumbers  = 64
	maxInlineBinary = 1024
)

// BulkDataMarker is the BulkDataURI of a value kept in the object only (a
// binary value over maxInlineBinary or private, a long number list or
// text): DICOMweb turns it into the element's bulk data URL (ResolveBulk).
const BulkDataMarker = "molar:bulkdata"

// attrsJSON renders a data set in the DICOM JSON model (PS3.18 F.2): tag
// "GGGGEEEE" → {"vr", "Value"}; no file meta, no pixel data; binary values
// up to maxInlineBinary as InlineBinary, longer ones (and over-long text or
// number lists) as BulkDataMarker; PN as {"Alphabetic": …}; IS/DS as
// numbers when they parse; AT as "GGGGEEEE".
func attrsJSON(d *header.Dataset) ([]byte, error) {
	return json.Marshal(jsonDataset(d))
}

func jsonDataset(d *header.Dataset) map[string]any {
	out := make(map[string]any, len(d.Elements))
	for _, e := range d.Elements {
		if e.Tag.Group() == 0x0002 || e.Tag.Group() == 0x7FE0 || e.Tag.Element() == 0 {
			continue
		}
		v := jsonElement(d, e)
		if v != nil {
			out[fmt.Sprintf("%08X", uint32(e.Tag))] = v
		}
	}
	return out
}

func jsonElement(d *header.Dataset, e *header.Element) map[string]any {
	vr := e.VR
	if e.IsSequence() {
		items := make([]any, 0, len(e.Items))
		for _, it := range e.Items {
			items = append(items, jsonDataset(it))
		}
		m := map[string]any{"vr": "SQ"}
		if len(items) > 0 {
			m["Value"] = items
		}
		return m
	}
	switch vr {
	case "OB", "OW", "OF", "OD", "OL", "OV", "UN":
		// Small binary values go inline (PS3.18 F.2.7: InlineBinary, the
		// little endian octets); larger ones, big endian words and private
		// binary data (vendors' blobs: they would only grow every index
		// row) stay in the object, reached by their BulkDataURI.
		if e.Skipped() || len(e.Value) > maxInlineBinary || (d.BigEndian && vr != "OB" && vr != "UN") || e.Tag.Group()%2 == 1 {
			return bulk(vr)
		}
		m := map[string]any{"vr": vr}
		if len(e.Value) > 0 {
			m["InlineBinary"] = base64.StdEncoding.EncodeToString(e.Value)
		}
		return m
	}
	m := map[string]any{"vr": vr}
	if len(e.Value) == 0 {
		return m
	}
	switch vr {
	case "US", "SS", "UL", "SL", "UV", "SV":
		vals := d.Ints(e.Tag)
		if len(vals) > maxAttrNumbers {
			return bulk(vr) // a LUT: in the object only (not an empty value)
		}
		arr := make([]any, len(vals))
		for i, v := range vals {
			arr[i] = v
		}
		m["Value"] = arr
		return m
	case "FL", "FD":
		vals := d.Floats(e.Tag)
		if len(vals) > maxAttrNumbers {
			return bulk(vr)
		}
		arr := make([]any, len(vals))
		for i, v := range vals {
			arr[i] = v
		}
		m["Value"] = arr
		return m
	case "AT":
		o := binary.ByteOrder(binary.LittleEndian)
		if d.BigEndian {
			o = binary.BigEndian
		}
		var arr []any
		for v := e.Value; len(v) >= 4; v = v[4:] {
			arr = append(arr, fmt.Sprintf("%04X%04X", o.Uint16(v), o.Uint16(v[2:])))
		}
		if len(arr) > maxAttrNumbers {
			return nil
		}
		if len(arr) > 0 {
			m["Value"] = arr
		}
		return m
	}
	if len(e.Value) > maxAttrValue {
		switch vr {
		case "LT", "ST", "UT", "UC", "DS", "IS":
			return bulk(vr) // in the object only (not an empty value)
		}
		return nil
	}
	var parts []string
	switch vr {
	case "LT", "ST", "UT", "UR":
		parts = []string{d.Get(e.Tag)}
	default:
		parts = d.Strings(e.Tag)
	}
	arr := make([]any, 0, len(parts))
	for _, p := range parts {
		switch vr {
		case "PN":
			if p == "" {
				arr = append(arr, nil)
			} else {
				arr = append(arr, map[string]string{"Alphabetic": p})
			}
		case "IS":
			if n, err := strconv.ParseInt(p, 10, 64); err == nil {
				arr = append(arr, n)
			} else {
				arr = append(arr, nil)
			}
		case "DS":
			if f, err := strconv.ParseFloat(p, 64); err == nil {
				arr = append(arr, f)
			} else {
				arr = append(arr, nil)
			}
		default:
			if p == "" {
				arr = append(arr, nil)
			} else {
				arr = append(arr, p)
			}
		}
	}
	if len(arr) > 0 {
		m["Value"] = arr
	}
	return m
}

// ResolveBulk rewrites the BulkDataMarker of every element of a DICOM JSON
// object, those in sequence items included, to url(path): path is the
// element's tag ("00420011"), inside sequences "SEQ/ITEM/TAG" (e.g.
// "00283010/0/00283006"); an empty url drops the element. Attributes
// without markers come back as they are.
func ResolveBulk(raw []byte, url func(path string) string) ([]byte, error) {
	if !bytes.Contains(raw, []byte(BulkDataMarker)) {
		return raw, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // numbers as written (IS beyond 2^53, DS digits)
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("ingest: attributes: %w", err)
	}
	resolveIn(m, "", url)
	return json.Marshal(m)
}

func resolveIn(m map[string]any, prefix string, url func(string) string) {
	for tag, v := range m {
		el, ok := v.(map[string]any)
		if !ok {
			continue
		}
		if el["BulkDataURI"] == BulkDataMarker {
			if u := url(prefix + tag); u != "" {
				el["BulkDataURI"] = u
			} else {
				delete(m, tag)
			}
			continue
		}
		if items, ok := el["Value"].([]any); ok && el["vr"] == "SQ" {
			for i, it := range items {
				if im, ok := it.(map[string]any); ok {
					resolveIn(im, fmt.Sprintf("%s%s/%d/", prefix, tag, i), url)
				}
			}
		}
	}
}

func bulk(vr string) map[string]any { return map[string]any{"vr": vr, "BulkDataURI": BulkDataMarker} }

// Code sequence item tags.
var (
	tagCodeValue     = header.NewTag(0x0008, 0x0100)
	tagCodingScheme  = header.NewTag(0x0008, 0x0102)
	tagCodeMeaning   = header.NewTag(0x0008, 0x0104)
	tagLongCodeValue = header.NewTag(0x0008, 0x0119)
)

// sctTeeth maps the SNOMED CT tooth concepts of DICOM CID 4018 (permanent
// teeth) and CID 4019 (deciduous teeth), all 52 (taken from the DICOM
// content mapping resource as pydicom ships it), to ISO 3950 numbers.
// Other codes fall back to the code meaning.
var sctTeeth = map[string]string{
	"22120004": "11", "11712009": "12", "80647007": "13", "57826002": "14", "36492000": "15", "5140004": "16",
	"7121006": "17", "68085002": "18", "31982000": "21", "25748002": "22", "72876007": "23", "61897005": "24",
	"23226009": "25", "23427002": "26", "66303006": "27", "87704003": "28", "113278005": "31", "77130001": "32",
	"39844006": "33", "2400006": "34", "24573005": "35", "89625000": "36", "48402004": "37", "74344005": "38",
	"15422005": "41", "82628004": "42", "47055002": "43", "80140008": "44", "8873007": "45", "28480000": "46",
	"40005008": "47", "38994002": "48", "245620002": "51", "245619008": "52", "30618001": "53", "245616001": "54",
	"27855007": "55", "51678005": "61", "43622005": "62", "73937000": "63", "45234009": "64", "51943008": "65",
	"89552004": "71", "14770005": "72", "245639007": "73", "38896004": "74", "49330006": "75", "67834006": "81",
	"22445006": "82", "6062009": "83", "245631005": "84", "61868007": "85",
}

var meaningTooth = regexp.MustCompile(`(?i)(?:^|\b(?:tooth|iso(?:\s*3950)?(?:\s*designation)?|fdi)\s*(?:no\.?|number|#)?\s*)([1-8][1-8])\b`)

// ValidFDI reports whether s is an ISO 3950 (FDI) tooth number: permanent
// 11–18 … 41–48, deciduous 51–55 … 81–85 (DOMAIN.md "Dental care").
func ValidFDI(s string) bool {
	if len(s) != 2 || s[0] < '1' || s[0] > '8' || s[1] < '1' {
		return false
	}
	if s[0] <= '4' {
		return s[1] <= '8'
	}
	return s[1] <= '5'
}

// ToothCodes returns the ISO 3950 numbers of the Primary Anatomic Structure
// Sequence (0008,2228): one item per tooth (PS3.3 C.8.11.9, CID 4018/4019).
// It reads ISO 3950 coded items, known SNOMED CT codes, and falls back to a
// tooth number in the code meaning ("Tooth 16", "ISO designation 16").
func ToothCodes(d *header.Dataset) []string {
	var out []string
	seen := map[string]bool{}
	for _, it := range d.Sequence(header.TagPrimaryAnatomicStructSeq) {
		value := it.Get(tagCodeValue)
		if value == "" {
			value = it.Get(tagLongCodeValue)
		}
		scheme := strings.ToUpper(it.Get(tagCodingScheme))
		var n string
		switch {
		case (strings.Contains(scheme, "3950") || scheme == "FDI") && ValidFDI(value):
			n = value
		case sctTeeth[value] != "" && (scheme == "SCT" || scheme == "SNM3" || scheme == "SRT" || scheme == ""):
			n = sctTeeth[value]
		default:
			if m := meaningTooth.FindStringSubmatch(it.Get(tagCodeMeaning)); m != nil && ValidFDI(m[1]) {
				n = m[1]
			}
		}
		if n != "" && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}
