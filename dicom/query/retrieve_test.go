package query_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/query"
	"github.com/molar-health/molar/dicom/uid"
)

// C-MOVE/C-GET select instances by the unique key of a level of the
// information model: a single value or a UID list, never a wildcard (it
// moved the whole archive), and no PATIENT level in the study root model.
func TestRetrieveIdentifier(t *testing.T) {
	f := newFixture(t, studies(3, func(i int, r *index.Record) {})...)
	s := &query.Service{DB: f.db.App, Tenant: func(*dimse.AssociationInfo) (int64, error) { return f.tenant, nil }}
	for _, tc := range []struct {
		name     string
		sopClass string
		level    string
		tag      header.Tag
		value    string
		want     []string // SOP Instance UIDs; nil with status: refused
		status   dimse.Status
	}{
		{"study", uid.StudyRootQueryRetrieveMove, "STUDY", header.TagStudyInstanceUID, "2.25.2", []string{"2.25.2.1.1"}, 0},
		{"study list", uid.StudyRootQueryRetrieveGet, "STUDY", header.TagStudyInstanceUID, `2.25.1\2.25.3`, []string{"2.25.1.1.1", "2.25.3.1.1"}, 0},
		{"series", uid.StudyRootQueryRetrieveMove, "SERIES", header.TagSeriesInstanceUID, "2.25.3.1", []string{"2.25.3.1.1"}, 0},
		{"patient", uid.PatientRootQueryRetrieveMove, "PATIENT", header.TagPatientID, "P1", []string{"2.25.2.1.1"}, 0},
		{"patient in study root", uid.StudyRootQueryRetrieveMove, "PATIENT", header.TagPatientID, "P1", nil, dimse.StatusDataSetDoesNotMatchSOP},
		{"wildcard study", uid.StudyRootQueryRetrieveMove, "STUDY", header.TagStudyInstanceUID, "*", nil, dimse.StatusDataSetDoesNotMatchSOP},
		{"wildcard patient", uid.PatientRootQueryRetrieveGet, "PATIENT", header.TagPatientID, "P*", nil, dimse.StatusDataSetDoesNotMatchSOP},
		{"missing unique key", uid.StudyRootQueryRetrieveMove, "SERIES", header.TagStudyInstanceUID, "2.25.1", nil, dimse.StatusDataSetDoesNotMatchSOP},
	} {
		id := header.NewDataset()
		id.SetString(header.TagQueryRetrieveLevel, "CS", tc.level)
		id.SetString(tc.tag, header.DictionaryVR(tc.tag), tc.value)
		b, err := id.Encode(uid.ExplicitVRLittleEndian)
		require.NoError(t, err)
		req := &dimse.QueryRequest{Command: dimse.CMoveRQ, SOPClassUID: tc.sopClass, TransferSyntax: uid.ExplicitVRLittleEndian, Identifier: b}
		insts, err := s.Retrieve(context.Background(), req)
		if tc.want == nil {
			var se *dimse.StatusError
			require.True(t, errors.As(err, &se), "%s: %v", tc.name, err)
			require.Equal(t, tc.status, se.Status, tc.name)
			continue
		}
		require.NoError(t, err, tc.name)
		var got []string
		for _, in := range insts {
			got = append(got, in.SOPInstanceUID)
		}
		require.Equal(t, tc.want, got, tc.name)
	}
}

// A C-FIND that fails for want of the database answers A700 (refused: out
// of resources, PS3.4 Table C.4-1), not A701, which C-FIND does not define.
func TestFindFailureStatus(t *testing.T) {
	f := newFixture(t)
	s := &query.Service{DB: f.db.App, Tenant: func(*dimse.AssociationInfo) (int64, error) { return f.tenant, nil }}
	f.db.App.Close()
	id := header.NewDataset()
	id.SetString(header.TagQueryRetrieveLevel, "CS", "STUDY")
	id.SetString(header.TagStudyInstanceUID, "UI", "")
	_, st, err := find(t, s, uid.StudyRootQueryRetrieveFind, id)
	require.Error(t, err)
	require.Equal(t, dimse.StatusOutOfResources, st)
	var se *dimse.StatusError
	require.True(t, errors.As(err, &se))
	require.Equal(t, dimse.StatusOutOfResources, se.Status)
	// A bad identifier value stays A900.
	id.SetString(header.TagStudyDate, "DA", "2024xx01")
	s.DB = newFixture(t).db.App
	_, st, _ = find(t, s, uid.StudyRootQueryRetrieveFind, id)
	require.Equal(t, dimse.StatusDataSetDoesNotMatchSOP, st)
}
