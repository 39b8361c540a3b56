package web

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/uid"
)

func TestParseMediaTypeTokensAndQuotedStrings(t *testing.T) {
	for _, tc := range []struct {
		in     string
		mt     string
		params map[string]string
		ok     bool
	}{
		{`multipart/related; type="application/dicom"; boundary=abc`, "multipart/related", map[string]string{"type": "application/dicom", "boundary": "abc"}, true},
		// OHIF's omitQuotationForMultipartRequest: the same, unquoted (PS3.18 6.1.1: equivalent).
		{`multipart/related; type=application/dicom; boundary=abc`, "multipart/related", map[string]string{"type": "application/dicom", "boundary": "abc"}, true},
		{`Multipart/Related; Type=application/octet-stream; transfer-syntax=*`, "multipart/related", map[string]string{"type": "application/octet-stream", "transfer-syntax": "*"}, true},
		{`application/dicom+json`, "application/dicom+json", map[string]string{}, true},
		{`nonsense`, "", nil, false},
	} {
		mt, params, ok := parseMediaType(tc.in)
		require.Equal(t, tc.ok, ok, tc.in)
		if ok {
			require.Equal(t, tc.mt, mt, tc.in)
			require.Equal(t, tc.params, params, tc.in)
		}
	}
}

func TestWantsPartOrderAndQ(t *testing.T) {
	req := func(accept string) *http.Request {
		r, _ := http.NewRequest("GET", "/", nil)
		r.Header.Set("Accept", accept)
		return r
	}
	for _, tc := range []struct {
		accept   string
		partType string
		want     []partChoice
	}{
		{"", "application/dicom", []partChoice{{"", ""}}},
		{`multipart/related; type=application/octet-stream; transfer-syntax=*`, "application/octet-stream", []partChoice{{"", "*"}}},
		{`multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1, multipart/related; type="application/dicom"; transfer-syntax=*`,
			"application/dicom", []partChoice{{"", uid.ExplicitVRLittleEndian}, {"", "*"}}},
		{`multipart/related; type="application/dicom"; q=0.5, multipart/related; type="application/dicom"; transfer-syntax=*`,
			"application/dicom", []partChoice{{"", "*"}, {"", ""}}},
		{`multipart/related; type="application/octet-stream"; q=0`, "application/octet-stream", nil},
		{`multipart/related; type="image/jpeg"`, "application/octet-stream", []partChoice{{"image/jpeg", ""}}},
		{`multipart/related; type="image/jpeg"`, "application/dicom", nil},
	} {
		require.Equal(t, tc.want, wantsPart(req(tc.accept), tc.partType), tc.accept)
	}
}

func TestFrameChoice(t *testing.T) {
	jpeg, le, be := uid.JPEGBaseline8Bit, uid.ExplicitVRLittleEndian, uid.ExplicitVRBigEndian
	for _, tc := range []struct {
		name         string
		choices      []partChoice
		stored       string
		encapsulated bool
		asStored, ok bool
	}{
		{"default of a JPEG instance: decoded", []partChoice{{"", ""}}, jpeg, true, false, true},
		{"* of a JPEG instance: the bitstream", []partChoice{{"", "*"}}, jpeg, true, true, true},
		{"image/jpeg of a JPEG instance: the bitstream", []partChoice{{"image/jpeg", ""}}, jpeg, true, true, true},
		{"image/jpeg of a lossless JPEG instance: not the default syntax", []partChoice{{"image/jpeg", ""}}, uid.JPEGLosslessSV1, true, false, false},
		{"image/jpeg with * of a lossless JPEG instance: as stored", []partChoice{{"image/jpeg", "*"}}, uid.JPEGLosslessSV1, true, true, true},
		{"image/jpeg of a native instance: not acceptable", []partChoice{{"image/jpeg", ""}}, le, false, false, false},
		{"image/jls of a JPEG instance: not acceptable", []partChoice{{"image/jls", "*"}}, jpeg, true, false, false},
		{"image/jls, then the default: decoded", []partChoice{{"image/jls", "*"}, {"", ""}}, jpeg, true, false, true},
		{"a syntax we cannot make, then *", []partChoice{{"", uid.JPEG2000}, {"", "*"}}, jpeg, true, true, true},
		{"native little endian: as stored", []partChoice{{"", ""}}, le, false, true, true},
		{"big endian by default: decoded", []partChoice{{"", ""}}, be, false, false, true},
		{"big endian with *: as stored", []partChoice{{"", "*"}}, be, false, true, true},
	} {
		asStored, ok := frameChoice(tc.choices, tc.stored, tc.encapsulated)
		require.Equal(t, tc.ok, ok, tc.name)
		require.Equal(t, tc.asStored, asStored, tc.name)
	}
}

func TestRetrievePlan(t *testing.T) {
	const (
		ele   = uid.ExplicitVRLittleEndian
		ile   = uid.ImplicitVRLittleEndian
		ebe   = uid.ExplicitVRBigEndian
		rle   = uid.RLELossless
		jpeg  = uid.JPEGBaseline8Bit
		mpeg4 = "1.2.840.10008.1.2.4.102"
	)
	insts := func(tss ...string) []index.Instance {
		var out []index.Instance
		for _, ts := range tss {
			out = append(out, index.Instance{TransferSyntax: ts})
		}
		return out
	}
	cases := []struct {
		name    string
		choices []partChoice
		stored  []string
		want    []delivery // nil: not acceptable
	}{
		{"default converts lossless and native", []partChoice{{"", ""}}, []string{ele, ile, rle},
			[]delivery{{ts: ele}, {ts: ele, lenient: true}, {ts: ele, lenient: true}}},
		{"default keeps lossy and unknown syntaxes", []partChoice{{"", ""}}, []string{jpeg, mpeg4}, []delivery{{ts: jpeg}, {ts: mpeg4}}},
		{"star is as stored", []partChoice{{"", "*"}}, []string{rle, ebe}, []delivery{{ts: rle}, {ts: ebe}}},
		{"implicit for all, strictly", []partChoice{{"", ile}}, []string{jpeg, ebe, ile}, []delivery{{ts: ile}, {ts: ile}, {ts: ile}}},
		{"big endian not from compressed", []partChoice{{"", ebe}}, []string{ele, rle}, nil},
		{"next choice when the first cannot be met", []partChoice{{"", ebe}, {"", "*"}}, []string{ele, rle}, []delivery{{ts: ele}, {ts: rle}}},
		{"no compression on the way out", []partChoice{{"", jpeg}}, []string{ele}, nil},
		{"the stored compressed syntax by name", []partChoice{{"", jpeg}}, []string{jpeg}, []delivery{{ts: jpeg}}},
		{"unknown stored syntax cannot be converted", []partChoice{{"", ele}}, []string{mpeg4}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := retrievePlan(c.choices, insts(c.stored...))
			require.Equal(t, c.want != nil, ok)
			require.Equal(t, c.want, got)
		})
	}
}
