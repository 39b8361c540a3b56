package query

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/header"
)

// Sequence items in a C-FIND answer are rebuilt from the stored DICOM JSON:
// text values come back; binary values and values kept in the object only
// (a BulkDataURI) are left out, never sent as empty elements.
func TestJSONItemsLeaveOutBinaryAndBulkData(t *testing.T) {
	item := map[string]json.RawMessage{
		"00080100": json.RawMessage(`{"vr":"SH","Value":["16"]}`),
		"00286020": json.RawMessage(`{"vr":"OB","InlineBinary":"AQI="}`),
		"00204000": json.RawMessage(`{"vr":"LT","BulkDataURI":"molar:bulkdata"}`),
	}
	ds := jsonItems([]map[string]json.RawMessage{item}, UTF8)
	require.Len(t, ds, 1)
	require.Equal(t, "16", ds[0].Get(header.NewTag(0x0008, 0x0100)))
	require.Nil(t, ds[0].Find(header.NewTag(0x0028, 0x6020)), "binary: left out")
	require.Nil(t, ds[0].Find(header.NewTag(0x0020, 0x4000)), "bulk data: left out")
}
