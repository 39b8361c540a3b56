package interop

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/uid"
)

// loaded is a Molar holding the fixtures plus a second patient's study.
func loaded(t *testing.T) (*molar, map[string]string) {
	m := startMolar(t, false, index.KeepFirst)
	m.addAE(t, "FINDSCU", "127.0.0.1:104", "store", "find", "move", "get")
	files := fixtures(t, t.TempDir())
	other := filepath.Join(t.TempDir(), "other.dcm")
	dicomtest.Instance{PatientID: "0202164321", PatientName: "Hansen^Jens", StudyUID: dicomtest.Root + ".300", SeriesUID: dicomtest.Root + ".300.1",
		SOPUID: dicomtest.Root + ".300.1.1", StudyDate: "20240301", StudyTime: "090000", Accession: "A300", Modality: "PX", InstanceNumber: 1}.Write(t, other)
	out := storescu(t, m.addr, "FINDSCU", append(sortedPaths(files), other))
	require.Equal(t, len(files)+1, strings.Count(out, "Received Store Response (Success)"), out)
	return m, files
}

// findscu runs a query (-k keys or a query file) and returns the
// responses (written by -X).
func findscu(t *testing.T, addr string, model string, args ...string) []*header.Dataset {
	h, p := dicomtest.HostPort(t, addr)
	dir := t.TempDir()
	var file []string
	if n := len(args); n > 0 && strings.HasSuffix(args[n-1], ".dcm") {
		args, file = args[:n-1], args[n-1:]
	}
	all := append([]string{model, "-X", "-od", dir, "-aet", "FINDSCU", "-aec", "MOLAR"}, args...)
	all = append(append(all, h, p), file...)
	out, err := dicomtest.Run(t, 60*time.Second, "findscu", all...)
	require.NoError(t, err, out)
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	var rs []*header.Dataset
	for _, n := range names {
		f, err := os.Open(filepath.Join(dir, n))
		require.NoError(t, err)
		hd, err := header.Read(f, header.Options{})
		f.Close()
		require.NoError(t, err)
		rs = append(rs, hd.Dataset)
	}
	return rs
}

func values(rs []*header.Dataset, tag header.Tag) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Get(tag))
	}
	sort.Strings(out)
	return out
}

func TestFindscuAllLevels(t *testing.T) {
	m, files := loaded(t)
	tagNumInst := header.NewTag(0x0020, 0x1208)
	tagModsInStudy := header.NewTag(0x0008, 0x0061)

	// Study root, STUDY level: wildcard on a Danish name (findscu sends the
	// shell's UTF-8), return keys, counts.
	rs := findscu(t, m.addr, "-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientName=ørsted*", "-k", "StudyInstanceUID",
		"-k", "NumberOfStudyRelatedInstances", "-k", "ModalitiesInStudy", "-k", "StudyDescription", "-k", "RetrieveAETitle")
	require.Len(t, rs, 1)
	assert.Equal(t, studyUID, rs[0].UID(header.TagStudyInstanceUID))
	assert.Equal(t, "Ørsted^Åse Sørine", rs[0].Get(header.TagPatientName))
	assert.Equal(t, "Bitewings højre", rs[0].Get(header.NewTag(0x0008, 0x1030)))
	assert.Equal(t, "10", rs[0].Get(tagNumInst))
	assert.Equal(t, "IO", rs[0].Get(tagModsInStudy))
	assert.Equal(t, "MOLAR", rs[0].Get(header.NewTag(0x0008, 0x0054)))

	// Date range, universal matching, a modality list.
	rs = findscu(t, m.addr, "-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyDate=20240101-20240131", "-k", "StudyInstanceUID", "-k", "PatientName")
	assert.Equal(t, []string{studyUID}, values(rs, header.TagStudyInstanceUID))
	rs = findscu(t, m.addr, "-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyDate=20240201-", "-k", "StudyInstanceUID")
	assert.Equal(t, []string{dicomtest.Root + ".300"}, values(rs, header.TagStudyInstanceUID))
	rs = findscu(t, m.addr, "-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID", "-k", "ModalitiesInStudy=PX\\CT")
	assert.Equal(t, []string{dicomtest.Root + ".300"}, values(rs, header.TagStudyInstanceUID))
	rs = findscu(t, m.addr, "-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID", "-k", "PatientName")
	assert.Len(t, rs, 2)
	// Ø is not O: no match.
	rs = findscu(t, m.addr, "-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientName=Orsted*", "-k", "StudyInstanceUID")
	assert.Empty(t, rs)
	// Time range and accession.
	rs = findscu(t, m.addr, "-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyTime=1000-1100", "-k", "AccessionNumber=A1*", "-k", "StudyInstanceUID")
	assert.Equal(t, []string{studyUID}, values(rs, header.TagStudyInstanceUID))

	// A Latin-1 query (ISO_IR 100) gets Latin-1 answers.
	q := header.NewDataset()
	q.SetString(header.TagSpecificCharacterSet, "CS", "ISO_IR 100")
	q.SetString(header.TagQueryRetrieveLevel, "CS", "STUDY")
	q.Set(&header.Element{Tag: header.TagPatientName, VR: "PN", Value: header.EncodeLatin1("ØRSTED^Åse*")})
	q.SetString(header.TagStudyInstanceUID, "UI", "")
	qfile := filepath.Join(t.TempDir(), "q.dcm")
	var qb bytes.Buffer
	require.NoError(t, header.WriteFileHeader(&qb, uid.StudyRootQueryRetrieveFind, "1.2.3", uid.ExplicitVRLittleEndian))
	require.NoError(t, q.WriteTo(&qb, uid.ExplicitVRLittleEndian))
	require.NoError(t, os.WriteFile(qfile, qb.Bytes(), 0o644))
	rs = findscu(t, m.addr, "-S", qfile)
	require.Len(t, rs, 1)
	assert.Equal(t, []string{"ISO_IR 100"}, rs[0].CharacterSets())
	raw, _ := rs[0].Raw(header.TagPatientName)
	assert.Equal(t, header.EncodeLatin1("Ørsted^Åse Sørine"), bytes.TrimRight(raw, " "))

	// Patient root, PATIENT level.
	rs = findscu(t, m.addr, "-P", "-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID=0101154321", "-k", "PatientName", "-k", "PatientBirthDate",
		"-k", "NumberOfPatientRelatedStudies")
	require.Len(t, rs, 1)
	assert.Equal(t, "20150101", rs[0].Get(header.TagPatientBirthDate))
	assert.Equal(t, "1", rs[0].Get(header.NewTag(0x0020, 0x1200)))
	// Patient root, STUDY level under a patient.
	rs = findscu(t, m.addr, "-P", "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientID=0202164321", "-k", "StudyInstanceUID")
	assert.Equal(t, []string{dicomtest.Root + ".300"}, values(rs, header.TagStudyInstanceUID))

	// SERIES level: every syntax's series, with number and modality.
	rs = findscu(t, m.addr, "-S", "-k", "QueryRetrieveLevel=SERIES", "-k", "StudyInstanceUID="+studyUID, "-k", "SeriesInstanceUID",
		"-k", "Modality", "-k", "SeriesNumber", "-k", "NumberOfSeriesRelatedInstances")
	assert.Len(t, rs, len(files))
	for _, r := range rs {
		assert.Equal(t, "IO", r.Get(header.TagModality))
		assert.Equal(t, "1", r.Get(header.NewTag(0x0020, 0x1209)))
	}
	rs = findscu(t, m.addr, "-S", "-k", "QueryRetrieveLevel=SERIES", "-k", "StudyInstanceUID="+studyUID, "-k", "SeriesInstanceUID", "-k", "SeriesNumber=3")
	assert.Equal(t, []string{studyUID + ".3"}, values(rs, header.TagSeriesInstanceUID))

	// IMAGE level: UID list, tooth codes (sequence matching), stored
	// attributes returned.
	rs = findscu(t, m.addr, "-S", "-k", "QueryRetrieveLevel=IMAGE", "-k", "StudyInstanceUID="+studyUID, "-k", "SeriesInstanceUID",
		"-k", `SOPInstanceUID=`+studyUID+`.1.1\`+studyUID+`.2.1`, "-k", "SOPClassUID", "-k", "InstanceNumber", "-k", "Rows",
		"-k", "PrimaryAnatomicStructureSequence[0].CodeValue", "-k", "ImageLaterality", "-k", "ImageType")
	require.Len(t, rs, 2)
	for _, r := range rs {
		assert.Equal(t, uid.DigitalIntraOralXRayForPresentation, r.UID(header.TagSOPClassUID))
		assert.Equal(t, "96", r.Get(header.TagRows))
		assert.Equal(t, "R", r.Get(header.NewTag(0x0020, 0x0062)))
		assert.Equal(t, `ORIGINAL\PRIMARY`, r.Get(header.NewTag(0x0008, 0x0008)))
		items := r.Sequence(header.TagPrimaryAnatomicStructSeq)
		require.Len(t, items, 2)
		assert.Equal(t, "16", items[0].Get(header.NewTag(0x0008, 0x0100)))
	}
	rs = findscu(t, m.addr, "-S", "-k", "QueryRetrieveLevel=IMAGE", "-k", "StudyInstanceUID", "-k", "SOPInstanceUID",
		"-k", "PrimaryAnatomicStructureSequence[0].CodeValue=46")
	assert.Len(t, rs, len(files))
	rs = findscu(t, m.addr, "-S", "-k", "QueryRetrieveLevel=IMAGE", "-k", "StudyInstanceUID", "-k", "SOPInstanceUID",
		"-k", "PrimaryAnatomicStructureSequence[0].CodeValue=21")
	assert.Empty(t, rs)
	// The same teeth asked for in SNOMED CT (CID 4018): 46 is 28480000,
	// 21 is 31982000.
	rs = findscu(t, m.addr, "-S", "-k", "QueryRetrieveLevel=IMAGE", "-k", "StudyInstanceUID", "-k", "SOPInstanceUID",
		"-k", "PrimaryAnatomicStructureSequence[0].CodeValue=28480000", "-k", "PrimaryAnatomicStructureSequence[0].CodingSchemeDesignator=SCT")
	assert.Len(t, rs, len(files), "a SNOMED CT tooth code")
	rs = findscu(t, m.addr, "-S", "-k", "QueryRetrieveLevel=IMAGE", "-k", "StudyInstanceUID", "-k", "SOPInstanceUID",
		"-k", "PrimaryAnatomicStructureSequence[0].CodeValue=31982000", "-k", "PrimaryAnatomicStructureSequence[0].CodingSchemeDesignator=SCT")
	assert.Empty(t, rs)

	// Every C-FIND is in the audit log: a search, and a read of each study
	// (or patient) it answered with.
	var searches, studyReads, patientReads int
	require.NoError(t, m.db.Admin.QueryRow(context.Background(), `SELECT
		count(*) FILTER (WHERE action = 'search'),
		count(*) FILTER (WHERE action = 'read' AND object LIKE 'dicom.study/%'),
		count(*) FILTER (WHERE action = 'read' AND object LIKE 'dicom.patient/%')
		FROM audit.event WHERE username = 'dicom:FINDSCU' AND detail->>'dimse' = 'C-FIND'`).Scan(&searches, &studyReads, &patientReads))
	assert.GreaterOrEqual(t, searches, 10)
	assert.Greater(t, studyReads, 0)
	assert.Greater(t, patientReads, 0, "PATIENT level answers")
}

// pixelOf returns the native pixel data of a Part-10 file in little endian.
func pixelOf(t *testing.T, path string) (*header.Header, []byte) {
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	r := header.NewReader(bytes.NewReader(raw), header.Options{})
	h, err := r.ReadHeader()
	require.NoError(t, err)
	require.NotNil(t, h.PixelData)
	rest, err := io.ReadAll(r.Rest())
	require.NoError(t, err)
	px := rest[h.PixelData.ValueOffset-h.PixelData.Offset:][:h.PixelData.Length]
	if h.Dataset.BigEndian {
		px = append([]byte(nil), px...)
		for i := 0; i+1 < len(px); i += 2 {
			px[i], px[i+1] = px[i+1], px[i]
		}
	}
	return h, px
}

// TestMovescuAndGetscu: movescu sends a study to storescp (every syntax
// as stored); getscu, which accepts only uncompressed syntaxes, gets the
// uncompressed and deflated series, converted where needed; compressed
// ones fail as sub-operations with the rest delivered.
func TestMovescuAndGetscu(t *testing.T) {
	m, files := loaded(t)
	dest := t.TempDir()
	scpAddr := dicomtest.StartStorescp(t, dest)
	m.addAE(t, "STORESCP", scpAddr)
	h, p := dicomtest.HostPort(t, m.addr)

	out, err := dicomtest.Run(t, 120*time.Second, "movescu", "-v", "-S", "-aet", "FINDSCU", "-aec", "MOLAR", "-aem", "STORESCP",
		"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID="+studyUID, h, p)
	require.NoError(t, err, out)
	got, err := os.ReadDir(dest)
	require.NoError(t, err)
	require.Len(t, got, len(files), out)
	for name, path := range files {
		raw, err := os.ReadFile(path)
		require.NoError(t, err)
		want, ts := dicomtest.DataSetBody(t, raw)
		fh, err := header.Read(bytes.NewReader(raw), header.Options{})
		require.NoError(t, err)
		sop := fh.Dataset.UID(header.TagSOPInstanceUID)
		recv, err := os.ReadFile(received(t, dest, sop))
		require.NoError(t, err, name)
		gotBody, gotTS := dicomtest.DataSetBody(t, recv)
		if name == "jpll57" {
			// storescp does not accept process 14 (non-SV1): Molar decoded
			// it (lossless) to explicit VR little endian.
			require.Equal(t, uid.ExplicitVRLittleEndian, gotTS)
			_, px := pixelOf(t, received(t, dest, sop))
			_, wantPx := pixelOf(t, files["ele"])
			assert.Equal(t, wantPx, px)
			continue
		}
		require.Equal(t, ts, gotTS, name)
		assert.Empty(t, dicomtest.CompareDataSets(want, gotBody, ts), name)
	}
	// Unknown destination.
	out, _ = dicomtest.Run(t, 60*time.Second, "movescu", "-v", "-S", "-aet", "FINDSCU", "-aec", "MOLAR", "-aem", "NOWHERE",
		"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID="+studyUID, h, p)
	assert.Contains(t, out, "Refused: MoveDestinationUnknown", out)

	// getscu: uncompressed series, one stored big endian and one deflated.
	for _, name := range []string{"ele", "ile", "ebe", "dfl", "jpll70", "jpll57", "rle", "jls80"} {
		raw, err := os.ReadFile(files[name])
		require.NoError(t, err)
		hd, err := header.Read(bytes.NewReader(raw), header.Options{})
		require.NoError(t, err)
		series := hd.Dataset.UID(header.TagSeriesInstanceUID)
		sop := hd.Dataset.UID(header.TagSOPInstanceUID)
		dir := t.TempDir()
		out, err := dicomtest.Run(t, 60*time.Second, "getscu", "-v", "-S", "-aet", "FINDSCU", "-aec", "MOLAR", "-od", dir,
			"-k", "QueryRetrieveLevel=SERIES", "-k", "StudyInstanceUID="+studyUID, "-k", "SeriesInstanceUID="+series, h, p)
		require.NoError(t, err, out)
		recv := received(t, dir, sop)
		rh, px := pixelOf(t, recv)
		_, wantPx := pixelOf(t, files["ele"])
		assert.Equal(t, wantPx, px, name)
		assert.Equal(t, "Ørsted^Åse Sørine", rh.Dataset.Get(header.TagPatientName), name)
		assert.Equal(t, uint16(96), binaryUint16(rh, header.TagRows), name)
	}
	// Every retrieve is in the audit log as an export of the study, with
	// the calling AE and the destination.
	var moves, gets int
	require.NoError(t, m.db.Admin.QueryRow(context.Background(), `SELECT
		count(*) FILTER (WHERE detail->>'dimse' = 'C-MOVE' AND detail->>'destination_ae' = 'STORESCP'),
		count(*) FILTER (WHERE detail->>'dimse' = 'C-GET' AND detail->>'destination_ae' = 'FINDSCU')
		FROM audit.event WHERE action = 'export' AND username = 'dicom:FINDSCU' AND object LIKE 'dicom.study/%'`).Scan(&moves, &gets))
	assert.GreaterOrEqual(t, moves, 1)
	assert.Equal(t, 8, gets, "one per getscu (one study each)")
}

// TestMovescuToImplicitVROnlyStorescp: a move destination that accepts
// only Implicit VR Little Endian gets an instance stored Explicit VR Little
// Endian converted, not a failed sub-operation.
func TestMovescuToImplicitVROnlyStorescp(t *testing.T) {
	m, files := loaded(t)
	dest := t.TempDir()
	m.addAE(t, "STORESCP", dicomtest.StartStorescp(t, dest, "+xi"))
	h, p := dicomtest.HostPort(t, m.addr)
	raw, err := os.ReadFile(files["ele"])
	require.NoError(t, err)
	hd, err := header.Read(bytes.NewReader(raw), header.Options{})
	require.NoError(t, err)
	out, err := dicomtest.Run(t, 60*time.Second, "movescu", "-v", "-S", "-aet", "FINDSCU", "-aec", "MOLAR", "-aem", "STORESCP",
		"-k", "QueryRetrieveLevel=SERIES", "-k", "StudyInstanceUID="+studyUID, "-k", "SeriesInstanceUID="+hd.Dataset.UID(header.TagSeriesInstanceUID), h, p)
	require.NoError(t, err, out)
	assert.Contains(t, out, "Received Final Move Response (Success)", out)
	recv := received(t, dest, hd.Dataset.UID(header.TagSOPInstanceUID))
	rawRecv, err := os.ReadFile(recv)
	require.NoError(t, err)
	_, gotTS := dicomtest.DataSetBody(t, rawRecv)
	assert.Equal(t, uid.ImplicitVRLittleEndian, gotTS)
	rh, px := pixelOf(t, recv)
	_, wantPx := pixelOf(t, files["ele"])
	assert.Equal(t, wantPx, px)
	assert.Equal(t, "Ørsted^Åse Sørine", rh.Dataset.Get(header.TagPatientName))
}

// received finds the file a DCMTK receiver wrote for an instance
// (<class prefix>.<SOP Instance UID>).
func received(t *testing.T, dir, sop string) string {
	m, _ := filepath.Glob(filepath.Join(dir, "*."+sop))
	require.Len(t, m, 1, "received %s", sop)
	return m[0]
}

func binaryUint16(h *header.Header, t header.Tag) uint16 {
	v, _ := h.Dataset.Int(t)
	return uint16(v)
}
