package header

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdicom "github.com/suyashkumar/dicom"
	stag "github.com/suyashkumar/dicom/pkg/tag"

	"github.com/molar-health/molar/dicom/uid"

	"github.com/molar-health/molar/storage/postgres/pgtest"
)

const pydicomFiles = "/usr/lib/python3/dist-packages/pydicom/data/test_files"

func testFiles(t testing.TB) []string {
	files, _ := filepath.Glob(filepath.Join(pydicomFiles, "*.dcm"))
	if len(files) == 0 {
		pgtest.Unavailable(t, "pydicom test files (python3-pydicom)", os.ErrNotExist)
	}
	return files
}

// oracleStrings parses a file with suyashkumar/dicom (trusted input only) and
// returns the top-level string values by tag.
func oracleStrings(t *testing.T, path string) (map[Tag][]string, bool) {
	ds, err := func() (ds sdicom.Dataset, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = errors.New("oracle panicked")
			}
		}()
		return sdicom.ParseFile(path, nil, sdicom.SkipPixelData())
	}()
	if err != nil {
		return nil, false
	}
	out := map[Tag][]string{}
	for _, e := range ds.Elements {
		if e.Value == nil || e.Value.ValueType() != sdicom.Strings {
			continue
		}
		out[NewTag(e.Tag.Group, e.Tag.Element)] = e.Value.GetValue().([]string)
	}
	return out, true
}

func TestReadPydicomFilesAgainstOracle(t *testing.T) {
	compared := 0
	for _, path := range testFiles(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := os.Open(path)
			require.NoError(t, err)
			defer f.Close()
			h, err := Read(f, Options{})
			want, ok := oracleStrings(t, path)
			if err != nil {
				// Bad files are allowed to fail, with one of our errors.
				assert.True(t, errors.Is(err, ErrTruncated) || errors.Is(err, ErrMalformed) || errors.Is(err, ErrLimit), "unexpected error kind: %v", err)
				t.Logf("not read: %v (oracle ok=%v)", err, ok)
				return
			}
			if !ok {
				return
			}
			for tg, vals := range want {
				if tg.Group() == 0x0002 || tg.Group() == 0xFFFE {
					continue
				}
				e := h.Dataset.Find(tg)
				if !assert.NotNil(t, e, "missing %v", tg) {
					continue
				}
				if e.VR == "PN" || e.VR == "SH" || e.VR == "LO" || e.VR == "LT" || e.VR == "ST" || e.VR == "UT" || e.VR == "UC" {
					continue // the oracle does not decode character sets the same way
				}
				if !isTextVR(e.VR) {
					continue
				}
				got := strings.Split(string(trimRight(e.Value)), `\`)
				for i := range got {
					got[i] = strings.TrimSpace(strings.TrimRight(got[i], "\x00"))
				}
				for i := range vals {
					vals[i] = strings.TrimSpace(strings.TrimRight(vals[i], "\x00"))
				}
				if len(vals) == 0 {
					vals = []string{""}
				}
				assert.Equal(t, vals, got, "tag %v", tg)
			}
			compared++
		})
	}
	assert.Greater(t, compared, 40, "too few files compared against the oracle")
}

func TestPixelDataOffset(t *testing.T) {
	for _, name := range []string{"CT_small.dcm", "MR_small_bigendian.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm", "MR_small_implicit.dcm", "liver_1frame.dcm"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(pydicomFiles, name)
			raw, err := os.ReadFile(path)
			if err != nil {
				pgtest.Unavailable(t, "pydicom test files (python3-pydicom)", err)
			}
			r := NewReader(bytes.NewReader(raw), Options{})
			h, err := r.ReadHeader()
			require.NoError(t, err)
			require.NotNil(t, h.PixelData)
			p := h.PixelData
			var bo binary.ByteOrder = binary.LittleEndian
			ts, _ := uid.LookupTransferSyntax(h.TransferSyntax)
			if ts.BigEndian {
				bo = binary.BigEndian
			}
			assert.Equal(t, uint16(0x7FE0), bo.Uint16(raw[p.Offset:]))
			assert.Equal(t, uint16(0x0010), bo.Uint16(raw[p.Offset+2:]))
			if !p.Encapsulated() {
				assert.LessOrEqual(t, p.ValueOffset+int64(p.Length), int64(len(raw)), "pixel data within the file")
			} else {
				assert.Equal(t, uint16(0xFFFE), bo.Uint16(raw[p.ValueOffset:]), "first item follows")
			}
			rest, err := io.ReadAll(r.Rest())
			require.NoError(t, err)
			assert.Equal(t, raw[p.Offset:], rest)
			assert.Equal(t, h.Dataset.UID(TagSOPClassUID) != "", true)
		})
	}
}

func TestDeflated(t *testing.T) {
	f, err := os.Open(filepath.Join(pydicomFiles, "image_dfl.dcm"))
	if err != nil {
		pgtest.Unavailable(t, "pydicom test files (python3-pydicom)", err)
	}
	defer f.Close()
	h, err := Read(f, Options{})
	require.NoError(t, err)
	assert.Equal(t, uid.DeflatedExplicitVRLittleEndian, h.TransferSyntax)
	require.NotNil(t, h.PixelData)
	rows, ok := h.Dataset.Int(TagRows)
	assert.True(t, ok)
	assert.Greater(t, rows, int64(0))
}

func buildSample() *Dataset {
	d := NewDataset()
	d.SetString(TagSpecificCharacterSet, "CS", "ISO_IR 100")
	d.Set(&Element{Tag: TagPatientName, VR: "PN", Value: EncodeLatin1("Ærø^Søren Åge")})
	d.SetString(TagPatientID, "LO", "0101011234")
	d.SetString(TagSOPInstanceUID, "UI", "1.2.3.4.5")
	d.SetString(TagSOPClassUID, "UI", uid.DigitalIntraOralXRayForPresentation)
	d.SetUint16(TagRows, 512)
	d.SetUint16(TagColumns, 256)
	tooth := NewDataset()
	tooth.SetString(NewTag(0x0008, 0x0100), "SH", "T-54210")
	tooth.SetString(NewTag(0x0008, 0x0102), "SH", "SRT")
	tooth2 := NewDataset()
	tooth2.SetString(NewTag(0x0008, 0x0100), "SH", "T-54220")
	d.SetSequence(TagPrimaryAnatomicStructSeq, tooth, tooth2)
	d.SetSequence(TagAnatomicRegionSequence) // empty sequence
	return d
}

func TestRoundTripAllSyntaxes(t *testing.T) {
	d := buildSample()
	for _, ts := range []string{uid.ImplicitVRLittleEndian, uid.ExplicitVRLittleEndian, uid.ExplicitVRBigEndian, uid.DeflatedExplicitVRLittleEndian, uid.JPEGBaseline8Bit} {
		t.Run(ts, func(t *testing.T) {
			b, err := d.Encode(ts)
			require.NoError(t, err)
			// Append pixel data to check the stop.
			pd := NewDataset()
			pd.BigEndian = ts == uid.ExplicitVRBigEndian
			pd.Set(&Element{Tag: TagPixelData, VR: "OW", Value: make([]byte, 64)})
			if ts != uid.DeflatedExplicitVRLittleEndian {
				pb, err := pd.Encode(ts)
				require.NoError(t, err)
				b = append(b, pb...)
			}
			h, err := Read(bytes.NewReader(b), Options{TransferSyntax: ts})
			require.NoError(t, err)
			got := h.Dataset
			assert.Equal(t, "Ærø^Søren Åge", got.Get(TagPatientName))
			assert.Equal(t, "1.2.3.4.5", got.UID(TagSOPInstanceUID))
			rows, _ := got.Int(TagRows)
			assert.Equal(t, int64(512), rows)
			seq := got.Sequence(TagPrimaryAnatomicStructSeq)
			require.Len(t, seq, 2)
			assert.Equal(t, "T-54220", seq[1].Get(NewTag(0x0008, 0x0100)))
			assert.Equal(t, "Ærø^Søren Åge", seq[0].DecodedCharsetProbe(TagPatientName, got))
			e := got.Find(TagAnatomicRegionSequence)
			require.NotNil(t, e)
			assert.Empty(t, e.Items)
			if ts != uid.DeflatedExplicitVRLittleEndian {
				require.NotNil(t, h.PixelData)
				assert.Equal(t, uint32(64), h.PixelData.Length)
			}
			// Detection without a given syntax works for the plain ones.
			if ts == uid.ImplicitVRLittleEndian || ts == uid.ExplicitVRLittleEndian || ts == uid.ExplicitVRBigEndian {
				h2, err := Read(bytes.NewReader(b), Options{})
				require.NoError(t, err)
				assert.Equal(t, ts, h2.TransferSyntax)
			}
			// Re-encoding what we read gives the same bytes (sequences are
			// always written with undefined length).
			b2, err := got.Encode(ts)
			require.NoError(t, err)
			b1, _ := d.Encode(ts)
			assert.Equal(t, b1, b2)
		})
	}
}

// DecodedCharsetProbe is a test helper: items inherit the character set of
// their parent; decode a Latin-1 value as if it were in this item.
func (d *Dataset) DecodedCharsetProbe(t Tag, parent *Dataset) string {
	return DecodeText(d.charset, trimRight(parent.Find(t).Value))
}

func TestCharsets(t *testing.T) {
	assert.Equal(t, "Søren", DecodeText([]string{"ISO_IR 100"}, []byte{'S', 0xF8, 'r', 'e', 'n'}))
	assert.Equal(t, "Søren", DecodeText([]string{"ISO_IR 192"}, []byte("Søren")))
	assert.Equal(t, "Søren", DecodeText(nil, []byte("Søren")), "valid UTF-8 without declared set passes")
	assert.Equal(t, "Søren", DecodeText([]string{"ISO_IR 144"}, []byte{'S', 0xF8, 'r', 'e', 'n'}), "unknown set, not UTF-8: Latin-1 fallback")
	assert.Equal(t, "x\uFFFDy", DecodeText([]string{"ISO_IR 192"}, []byte{'x', 0xFF, 'y'}))
}

func le16(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

func TestHostileLengths(t *testing.T) {
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	cases := map[string]struct {
		data []byte
		ts   string
		err  error
	}{
		"huge explicit OB": {cat(le16(0x0009), le16(0x1010), []byte("OB\x00\x00"), le32(0xFFFFFFF0)), uid.ExplicitVRLittleEndian, ErrLimit},
		"huge implicit":    {cat(le16(0x0010), le16(0x0010), le32(0x7FFFFFFF)), uid.ImplicitVRLittleEndian, ErrLimit},
		"lying length":     {cat(le16(0x0010), le16(0x0010), le32(1000)), uid.ImplicitVRLittleEndian, ErrTruncated},
		"truncated tag":    {[]byte{0x10, 0x00, 0x10}, uid.ImplicitVRLittleEndian, ErrTruncated},
		"bad VR":           {cat(le16(0x0010), le16(0x0010), []byte("zz"), le16(2), []byte("AB")), uid.ExplicitVRLittleEndian, ErrMalformed},
		"unterminated seq": {cat(le16(0x0008), le16(0x1115), []byte("SQ\x00\x00"), le32(UndefinedLength), le16(0xFFFE), le16(0xE000), le32(UndefinedLength)), uid.ExplicitVRLittleEndian, ErrTruncated},
		"item overruns":    {cat(le16(0x0008), le16(0x1115), []byte("SQ\x00\x00"), le32(8), le16(0xFFFE), le16(0xE000), le32(100)), uid.ExplicitVRLittleEndian, ErrMalformed},
		"stray item":       {cat(le16(0xFFFE), le16(0xE000), le32(0)), uid.ExplicitVRLittleEndian, ErrMalformed},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(c.data), Options{TransferSyntax: c.ts})
			require.Error(t, err)
			assert.ErrorIs(t, err, c.err)
		})
	}
	// Depth limit.
	var b []byte
	for i := 0; i < 40; i++ {
		b = append(b, cat(le16(0x0008), le16(0x1115), le32(UndefinedLength), le16(0xFFFE), le16(0xE000), le32(UndefinedLength))...)
	}
	_, err := Read(bytes.NewReader(b), Options{TransferSyntax: uid.ImplicitVRLittleEndian})
	assert.ErrorIs(t, err, ErrLimit)
	// Header byte limit.
	big := NewDataset()
	big.Set(&Element{Tag: NewTag(0x0009, 0x1001), VR: "OB", Value: make([]byte, 4096)})
	enc, _ := big.Encode(uid.ExplicitVRLittleEndian)
	_, err = Read(bytes.NewReader(enc), Options{TransferSyntax: uid.ExplicitVRLittleEndian, MaxHeaderBytes: 1024})
	assert.ErrorIs(t, err, ErrLimit)
}

// A lying length on a short stream must not allocate the claimed size.
func TestNoAllocationFromLength(t *testing.T) {
	data := bytes.Join([][]byte{le16(0x0009), le16(0x1010), []byte("OB\x00\x00"), le32(15 << 20), make([]byte, 100)}, nil)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const runs = 20
	for i := 0; i < runs; i++ {
		_, err := Read(bytes.NewReader(data), Options{TransferSyntax: uid.ExplicitVRLittleEndian})
		require.ErrorIs(t, err, ErrTruncated)
	}
	runtime.ReadMemStats(&after)
	perRun := (after.TotalAlloc - before.TotalAlloc) / runs
	assert.Less(t, perRun, uint64(1<<20), "read allocated %d bytes for a 15 MiB claim", perRun)
}

func TestOracleTagDictionary(t *testing.T) {
	assert.Equal(t, "PN", DictionaryVR(TagPatientName))
	assert.Equal(t, "SQ", DictionaryVR(TagPrimaryAnatomicStructSeq))
	assert.Equal(t, "UN", DictionaryVR(NewTag(0x0009, 0x1001)))
	assert.Equal(t, "UL", DictionaryVR(NewTag(0x0008, 0x0000)))
	info, err := stag.Find(stag.Tag{Group: 0x0010, Element: 0x0010})
	require.NoError(t, err)
	assert.Equal(t, info.Name, TagName(TagPatientName))
}

func FuzzHeader(f *testing.F) {
	for _, name := range []string{"CT_small.dcm", "MR_small_bigendian.dcm", "ExplVR_LitEndNoMeta.dcm", "no_meta.dcm", "UN_sequence.dcm", "nested_priv_SQ.dcm", "image_dfl.dcm", "JPEG2000.dcm", "rtplan.dcm"} {
		if b, err := os.ReadFile(filepath.Join(pydicomFiles, name)); err == nil {
			if len(b) > 8192 {
				b = b[:8192]
			}
			f.Add(b, uint8(0))
		}
	}
	for i, ts := range []string{uid.ImplicitVRLittleEndian, uid.ExplicitVRLittleEndian, uid.ExplicitVRBigEndian, uid.DeflatedExplicitVRLittleEndian} {
		b, _ := buildSample().Encode(ts)
		f.Add(b, uint8(i+1))
	}
	syntaxes := []string{"", uid.ImplicitVRLittleEndian, uid.ExplicitVRLittleEndian, uid.ExplicitVRBigEndian, uid.DeflatedExplicitVRLittleEndian}
	f.Fuzz(func(t *testing.T, data []byte, tsi uint8) {
		opts := Options{TransferSyntax: syntaxes[int(tsi)%len(syntaxes)], MaxValueLength: 1 << 20, MaxHeaderBytes: 4 << 20}
		h, err := Read(bytes.NewReader(data), opts)
		if err != nil {
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrLimit) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		// Whatever was read can be encoded and read back.
		b, err := h.Dataset.Encode(uid.ExplicitVRLittleEndian)
		if err != nil {
			return // e.g. a value too long for a short-length VR after UN conversion
		}
		if _, err := Read(bytes.NewReader(b), Options{TransferSyntax: uid.ExplicitVRLittleEndian}); err != nil {
			t.Fatalf("re-read of our own encoding failed: %v", err)
		}
	})
}

func TestReadFileMeta(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(pydicomFiles, "CT_small.dcm"))
	if err != nil {
		pgtest.Unavailable(t, "pydicom test files (python3-pydicom)", err)
	}
	h, rest, err := ReadFileMeta(bytes.NewReader(raw), Options{})
	require.NoError(t, err)
	assert.True(t, h.Preamble)
	assert.Equal(t, uid.ExplicitVRLittleEndian, h.TransferSyntax)
	body, err := io.ReadAll(rest)
	require.NoError(t, err)
	assert.Equal(t, raw[h.DataSetOffset:], body)
	// No meta at all: everything is data set.
	h, rest, err = ReadFileMeta(bytes.NewReader(body), Options{TransferSyntax: uid.ExplicitVRLittleEndian})
	require.NoError(t, err)
	assert.Nil(t, h.Meta)
	b2, _ := io.ReadAll(rest)
	assert.Equal(t, body, b2)
}

// faultyReader fails once, at offset at, with err (a store or network
// fault), then goes on as if nothing happened (a retrying transport).
type faultyReader struct {
	r      io.Reader
	pos    int
	at     int
	err    error
	failed bool
}

func (f *faultyReader) Read(p []byte) (int, error) {
	if !f.failed && f.pos+len(p) > f.at {
		f.failed = true
		n, _ := f.r.Read(p[:f.at-f.pos])
		f.pos += n
		return n, f.err
	}
	n, err := f.r.Read(p)
	f.pos += n
	return n, err
}

// TestReadFaultIsNotBadData: a read that fails anywhere in the header (in
// the preamble, the meta, an element, before the pixel data) is reported
// as that failure, never as a truncated or malformed data set: the caller
// may try again (a thumbnail job), where bad data is final.
func TestReadFaultIsNotBadData(t *testing.T) {
	d := buildSample()
	body, err := d.Encode(uid.ExplicitVRLittleEndian)
	require.NoError(t, err)
	pd := NewDataset()
	pd.Set(&Element{Tag: TagPixelData, VR: "OW", Value: make([]byte, 64)})
	pb, err := pd.Encode(uid.ExplicitVRLittleEndian)
	require.NoError(t, err)
	body = append(body, pb...)
	var file bytes.Buffer
	require.NoError(t, WriteFileHeader(&file, "1.2.840.10008.5.1.4.1.1.1.3", "1.2.3.4.5", uid.ExplicitVRLittleEndian))
	file.Write(body)
	fault := errors.New("connection reset by peer")
	for name, in := range map[string][]byte{"part10": file.Bytes(), "bare": body} {
		for _, at := range []int{0, 1, 7, 100, 131, 133, 140, len(in) / 2, len(in) - len(pb) - 1, len(in) - len(pb) + 2} {
			if at >= len(in) {
				continue
			}
			_, err := Read(&faultyReader{r: bytes.NewReader(in), at: at, err: fault}, Options{})
			require.ErrorIs(t, err, fault, "%s, fault at %d", name, at)
			require.NotErrorIs(t, err, ErrTruncated)
			require.NotErrorIs(t, err, ErrMalformed)
		}
		h, err := Read(bytes.NewReader(in), Options{})
		require.NoError(t, err, name)
		require.NotNil(t, h.PixelData)
	}
}

// SkipBulkOver: a large binary value (an encapsulated document) is read
// past, not into memory and not against the header limits; the element
// says where it is; a tee still sees every byte; it cannot be re-encoded.
func TestSkipBulkOver(t *testing.T) {
	doc := bytes.Repeat([]byte("solid x\n"), 3<<20/8) // 3 MiB
	d := NewDataset()
	d.SetString(TagSOPClassUID, "UI", "1.2.840.10008.5.1.4.1.1.104.3")
	d.SetString(TagSOPInstanceUID, "UI", "1.2.3")
	d.Set(&Element{Tag: NewTag(0x0042, 0x0011), VR: "OB", Value: doc})
	d.SetString(NewTag(0x0042, 0x0012), "LO", "model/stl")
	for _, ts := range []string{uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian, uid.ExplicitVRBigEndian} {
		raw, err := d.Encode(ts)
		require.NoError(t, err)
		_, err = Read(bytes.NewReader(raw), Options{TransferSyntax: ts, MaxValueLength: 1 << 20, MaxHeaderBytes: 2 << 20})
		require.ErrorIs(t, err, ErrLimit, "without skipping, the limits hold")

		var tee bytes.Buffer
		rd := NewReader(io.TeeReader(bytes.NewReader(raw), &tee), Options{TransferSyntax: ts, MaxValueLength: 1 << 20, MaxHeaderBytes: 2 << 20, SkipBulkOver: 1 << 20})
		h, err := rd.ReadHeader()
		require.NoError(t, err, ts)
		e := h.Dataset.Find(NewTag(0x0042, 0x0011))
		require.NotNil(t, e)
		require.True(t, e.Skipped())
		require.Nil(t, e.Value)
		require.EqualValues(t, len(doc), e.BulkLength)
		require.Equal(t, doc, raw[e.BulkOffset:e.BulkOffset+int64(e.BulkLength)], "the offset points at the value")
		require.Equal(t, "model/stl", h.Dataset.Get(NewTag(0x0042, 0x0012)), "elements after it are read")
		require.Equal(t, raw, tee.Bytes(), "every byte went through")
		_, err = h.Dataset.Encode(ts)
		require.Error(t, err, "a skipped value is never written as empty")

		// Over a seekable stream (a stored object) the value is seeked over,
		// with the same result; a value longer than the stream is truncated.
		h, err = Read(bytes.NewReader(raw), Options{TransferSyntax: ts, MaxValueLength: 1 << 20, MaxHeaderBytes: 2 << 20, SkipBulkOver: 1 << 20})
		require.NoError(t, err, ts)
		e = h.Dataset.Find(NewTag(0x0042, 0x0011))
		require.True(t, e.Skipped())
		require.Equal(t, doc, raw[e.BulkOffset:e.BulkOffset+int64(e.BulkLength)])
		require.Equal(t, "model/stl", h.Dataset.Get(NewTag(0x0042, 0x0012)))
		cut := raw[:e.BulkOffset+int64(e.BulkLength)/2]
		_, err = Read(bytes.NewReader(cut), Options{TransferSyntax: ts, SkipBulkOver: 1 << 20})
		require.ErrorIs(t, err, ErrTruncated, "seekable")
		_, err = Read(io.MultiReader(bytes.NewReader(cut)), Options{TransferSyntax: ts, SkipBulkOver: 1 << 20})
		require.ErrorIs(t, err, ErrTruncated, "streamed")
	}
}

// A defined-length sequence may hold more than MaxHeaderBytes when its
// large values are left out of memory (a mesh's point data in a Surface
// Sequence); the limit then counts only what is read into memory.
func TestSkipBulkOverInsideSequences(t *testing.T) {
	points := make([]byte, 3<<20)
	for i := range points {
		points[i] = byte(i)
	}
	item := NewDataset()
	item.Set(&Element{Tag: NewTag(0x0066, 0x0016), VR: "OF", Value: points}) // Point Coordinates Data
	d := NewDataset()
	d.SetString(TagSOPInstanceUID, "UI", "1.2.3")
	d.SetSequence(NewTag(0x0066, 0x0011), item) // a sequence, written with undefined length
	raw, err := d.Encode(uid.ImplicitVRLittleEndian)
	require.NoError(t, err)
	// Rewrite the sequence and item with defined lengths, as many writers do.
	defined := definedLengths(t, raw)
	_, err = Read(bytes.NewReader(defined), Options{TransferSyntax: uid.ImplicitVRLittleEndian, MaxHeaderBytes: 2 << 20})
	require.ErrorIs(t, err, ErrLimit, "without skipping")
	h, err := Read(bytes.NewReader(defined), Options{TransferSyntax: uid.ImplicitVRLittleEndian, MaxHeaderBytes: 2 << 20, SkipBulkOver: 1 << 20})
	require.NoError(t, err)
	e := h.Dataset.Sequence(NewTag(0x0066, 0x0011))[0].Find(NewTag(0x0066, 0x0016))
	require.True(t, e.Skipped())
	require.Equal(t, points, defined[e.BulkOffset:e.BulkOffset+int64(e.BulkLength)])
}

// definedLengths re-encodes an implicit VR LE data set of one top-level
// element before a single-item sequence of one element: the sequence and
// its item get defined lengths instead of delimitation items.
func definedLengths(t *testing.T, raw []byte) []byte {
	t.Helper()
	// Layout: [UID element][seq tag][FFFFFFFF][item tag][FFFFFFFF][elem][item delim 8][seq delim 8]
	uidLen := 8 + int(binary.LittleEndian.Uint32(raw[4:8]))
	seq := raw[uidLen:]
	elem := seq[16 : len(seq)-16]
	var b bytes.Buffer
	b.Write(raw[:uidLen])
	b.Write(seq[:4])
	_ = binary.Write(&b, binary.LittleEndian, uint32(8+len(elem)))
	b.Write(seq[8:12])
	_ = binary.Write(&b, binary.LittleEndian, uint32(len(elem)))
	b.Write(elem)
	return b.Bytes()
}
