package ingest

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/header"
)

// The DICOM JSON attributes (QIDO, metadata): small binary values inline,
// over-long ones marked as bulk data rather than given as empty values.
func TestAttrsJSONBinaryAndLongValues(t *testing.T) {
	d := header.NewDataset()
	d.Set(&header.Element{Tag: header.NewTag(0x0028, 0x1201), VR: "OW", Value: []byte{1, 0, 2, 0}}) // a small palette LUT
	d.Set(&header.Element{Tag: header.NewTag(0x0018, 0x9999), VR: "UN", Value: make([]byte, maxInlineBinary+2)})
	d.Set(&header.Element{Tag: header.NewTag(0x0009, 0x1010), VR: "OB", Value: []byte{1, 2}}) // private: stays out
	d.SetUint16(header.NewTag(0x0028, 0x3006), make([]uint16, maxAttrNumbers+1)...)           // LUT Data
	d.SetUint16(header.NewTag(0x0028, 0x0010), 480)
	d.SetString(header.NewTag(0x0008, 0x0070), "LO", "Planmeca")
	long := make([]byte, maxAttrValue+2)
	for i := range long {
		long[i] = 'x'
	}
	d.SetString(header.NewTag(0x0020, 0x4000), "LT", string(long))
	b, err := attrsJSON(d)
	require.NoError(t, err)
	var got map[string]map[string]any
	require.NoError(t, json.Unmarshal(b, &got))
	require.Equal(t, map[string]any{"vr": "OW", "InlineBinary": "AQACAA=="}, got["00281201"])
	bulk := func(vr string) map[string]any { return map[string]any{"vr": vr, "BulkDataURI": BulkDataMarker} }
	require.Equal(t, bulk("UN"), got["00189999"], "too long to inline: in the object, by BulkDataURI")
	require.Equal(t, bulk("OB"), got["00091010"], "private binary: in the object")
	require.Equal(t, bulk("US"), got["00283006"], "a long number list: in the object, not empty")
	require.Equal(t, bulk("LT"), got["00204000"], "a long text: in the object, not empty")
	require.Equal(t, []any{float64(480)}, got["00280010"]["Value"])
	require.Equal(t, []any{"Planmeca"}, got["00080070"]["Value"])
}

// ResolveBulk gives every marked element its URL by tag path, in sequence
// items too, or drops it; numbers keep their digits.
func TestResolveBulk(t *testing.T) {
	raw := []byte(`{"00282000":{"vr":"OB","BulkDataURI":"` + BulkDataMarker + `"},"00280010":{"vr":"US","Value":[480]},` +
		`"00200013":{"vr":"IS","Value":[12345678901234567]},` +
		`"00283010":{"vr":"SQ","Value":[{"00283002":{"vr":"US","Value":[100,0,12]}},{"00283006":{"vr":"US","BulkDataURI":"` + BulkDataMarker + `"}}]}}`)
	out, err := ResolveBulk(raw, func(p string) string { return "u/" + p })
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(out, &got))
	require.Equal(t, "u/00282000", got["00282000"].(map[string]any)["BulkDataURI"])
	items := got["00283010"].(map[string]any)["Value"].([]any)
	require.Equal(t, "u/00283010/1/00283006", items[1].(map[string]any)["00283006"].(map[string]any)["BulkDataURI"])
	require.Contains(t, string(out), "12345678901234567", "an IS beyond 2^53 keeps its digits")
	out, err = ResolveBulk(raw, func(string) string { return "" })
	require.NoError(t, err)
	require.NotContains(t, string(out), "00282000")
	require.NotContains(t, string(out), "00283006")
	require.Contains(t, string(out), "00283002")
	plain := []byte(`{"00280010":{"vr":"US","Value":[480]}}`)
	out, err = ResolveBulk(plain, func(string) string { return "x" })
	require.NoError(t, err)
	require.Equal(t, plain, out, "no marker: as it was")
}

// Teeth coded in SNOMED CT (CID 4018/4019), as many sensors write them, are
// read as ISO 3950 numbers: every one of the 52, permanent and deciduous.
func TestToothCodesFromSNOMED(t *testing.T) {
	for _, c := range []struct {
		code, scheme, want string
	}{
		{"89625000", "SCT", "36"},  // mandibular left first molar
		{"28480000", "SCT", "46"},  // mandibular right first molar
		{"31982000", "SRT", "21"},  // maxillary left central incisor (old designator)
		{"38994002", "SCT", "48"},  // mandibular right third molar
		{"245620002", "SCT", "51"}, // deciduous maxillary right central incisor
		{"61868007", "SCT", "85"},  // deciduous mandibular right second molar
		{"77130001", "SCT", "32"},  // "Mandibular left lateral tooth" (sic in CID 4018)
	} {
		d := header.NewDataset()
		it := header.NewDataset()
		it.SetString(tagCodeValue, "SH", c.code)
		it.SetString(tagCodingScheme, "SH", c.scheme)
		it.SetString(tagCodeMeaning, "LO", "tooth")
		d.SetSequence(header.TagPrimaryAnatomicStructSeq, it)
		require.Equal(t, []string{c.want}, ToothCodes(d), c.code)
	}
	seen := map[string]bool{}
	for code, n := range sctTeeth {
		require.True(t, ValidFDI(n), code)
		require.False(t, seen[n], "two codes for tooth %s", n)
		seen[n] = true
	}
	require.Len(t, seen, 52, "32 permanent and 20 deciduous teeth")
}

// The Error Comment of a failed C-STORE carries the reason (the status
// already says "does not match" or "cannot understand"), within 64
// characters of the default repertoire.
func TestStatusCommentCarriesTheReason(t *testing.T) {
	for _, c := range []struct {
		err     error
		status  dimse.Status
		comment string
	}{
		{fmt.Errorf("%w: SOP Instance UID differs from the request", ErrMismatch), dimse.StatusDataSetDoesNotMatchSOP, "SOP Instance UID differs from the request"},
		{fmt.Errorf("%w: the instance belongs to another study than the request names", ErrMismatch), dimse.StatusDataSetDoesNotMatchSOP, "the instance belongs to another study than the request names"},
		{fmt.Errorf("%w: %w", ErrUnparseable, fmt.Errorf("%w: value length 99999999 > 16777216 at offset 1234", header.ErrLimit)), dimse.StatusCannotUnderstand,
			"limit exceeded: value length 99999999 > 16777216 at offset 1234"},
		{fmt.Errorf("%w: Ærø\\x", ErrMismatch), dimse.StatusDataSetDoesNotMatchSOP, "r  x"},
	} {
		st, comment := Status(c.err)
		require.Equal(t, c.status, st)
		require.LessOrEqual(t, len(comment), 64)
		require.Equal(t, c.comment, comment)
	}
}
