package query_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/query"
	"github.com/molar-health/molar/dicom/uid"
	"github.com/molar-health/molar/dicom/worklist"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

type listSource []worklist.Item

func (l listSource) Items(ctx context.Context, q worklist.Query) ([]worklist.Item, error) {
	var out []worklist.Item
	for _, it := range l {
		if (q.From.IsZero() || !it.ScheduledStart.Before(q.From)) && (q.To.IsZero() || it.ScheduledStart.Before(q.To)) {
			out = append(out, it)
		}
	}
	return out, nil
}

var (
	tagSPS          = header.NewTag(0x0040, 0x0100)
	tagSPSStartDate = header.NewTag(0x0040, 0x0002)
	tagSPSStartTime = header.NewTag(0x0040, 0x0003)
)

// find runs a C-FIND through the service and returns the responses.
func find(t *testing.T, s *query.Service, sopClass string, id *header.Dataset) ([]*header.Dataset, dimse.Status, error) {
	rs, st, _, err := findPending(t, s, sopClass, id)
	return rs, st, err
}

// findPending is find that also returns the status of the pending responses.
func findPending(t *testing.T, s *query.Service, sopClass string, id *header.Dataset) ([]*header.Dataset, dimse.Status, dimse.Status, error) {
	t.Helper()
	b, err := id.Encode(uid.ExplicitVRLittleEndian)
	require.NoError(t, err)
	req := &dimse.QueryRequest{Command: dimse.CFindRQ, SOPClassUID: sopClass, TransferSyntax: uid.ExplicitVRLittleEndian, Identifier: b,
		PendingStatus: dimse.StatusPending}
	var out []*header.Dataset
	st, err := s.Find(context.Background(), req, func(d *header.Dataset) error {
		b, err := d.Encode(uid.ExplicitVRLittleEndian)
		require.NoError(t, err)
		h, err := header.Read(bytes.NewReader(b), header.Options{TransferSyntax: uid.ExplicitVRLittleEndian})
		require.NoError(t, err)
		out = append(out, h.Dataset)
		return nil
	})
	return out, st, req.PendingStatus, err
}

// Scheduled Procedure Step Start Time is a required matching key (PS3.4
// Table K.6-1): a time range picks the steps of that part of the day, in
// Danish local time.
func TestWorklistStartTimeRange(t *testing.T) {
	cph, _ := time.LoadLocation("Europe/Copenhagen")
	src := listSource{
		{AccessionNumber: "A0800", ScheduledStart: time.Date(2024, 7, 2, 8, 0, 0, 0, cph), Modality: "IO"},
		{AccessionNumber: "A0930", ScheduledStart: time.Date(2024, 7, 2, 9, 30, 0, 0, cph), Modality: "IO"},
		{AccessionNumber: "A1200", ScheduledStart: time.Date(2024, 7, 2, 12, 0, 0, 0, cph), Modality: "IO"},
		{AccessionNumber: "A1400", ScheduledStart: time.Date(2024, 7, 2, 14, 0, 0, 0, cph), Modality: "IO"},
	}
	db := pgtest.Open(t, auth.Migrations(), audit.Migrations(), index.Migrations())
	ten, err := auth.CreateTenant(context.Background(), db.Admin, "0101", "Testkommune")
	require.NoError(t, err)
	s := &query.Service{DB: db.App, Tenant: func(*dimse.AssociationInfo) (int64, error) { return ten.ID, nil }, Worklist: func() worklist.Source { return src }}
	for _, tc := range []struct {
		date, time string
		want       []string
	}{
		{"20240702", "", []string{"A0800", "A0930", "A1200", "A1400"}},
		{"20240702", "0900-1200", []string{"A0930", "A1200"}},
		{"20240702", "0930-", []string{"A0930", "A1200", "A1400"}},
		{"20240702", "-0930", []string{"A0800", "A0930"}},
		{"20240702", "093000", []string{"A0930"}},
		{"", "13-", []string{"A1400"}},
		{"20240703", "0900-1200", nil},
	} {
		id := header.NewDataset()
		id.SetString(header.TagSpecificCharacterSet, "CS", "ISO_IR 192")
		id.SetString(header.TagAccessionNumber, "SH", "")
		sps := header.NewDataset()
		sps.SetString(tagSPSStartDate, "DA", tc.date)
		sps.SetString(tagSPSStartTime, "TM", tc.time)
		id.SetSequence(tagSPS, sps)
		rs, st, err := find(t, s, uid.ModalityWorklistFind, id)
		require.NoError(t, err)
		require.Equal(t, dimse.StatusSuccess, st)
		var got []string
		for _, r := range rs {
			got = append(got, r.Get(header.TagAccessionNumber))
		}
		require.Equal(t, tc.want, got, tc.date+" "+tc.time)
	}
	// A time that is no time is refused, not ignored.
	id := header.NewDataset()
	sps := header.NewDataset()
	sps.SetString(tagSPSStartTime, "TM", "9h30")
	id.SetSequence(tagSPS, sps)
	_, st, err := find(t, s, uid.ModalityWorklistFind, id)
	require.Error(t, err)
	require.NotEqual(t, dimse.StatusSuccess, st)
}
