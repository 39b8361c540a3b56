package ingest

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/header"
)

// The DICOM JSON attributes (QIDO, metadata): small binary values inline,
// over-long ones left out rather than given as empty values.
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
	require.NotContains(t, got, "00189999", "too long to inline: left out")
	require.NotContains(t, got, "00091010", "private binary: left out")
	require.NotContains(t, got, "00283006", "a long number list: left out, not empty")
	require.NotContains(t, got, "00204000", "a long text: left out, not empty")
	require.Equal(t, []any{float64(480)}, got["00280010"]["Value"])
	require.Equal(t, []any{"Planmeca"}, got["00080070"]["Value"])
}
