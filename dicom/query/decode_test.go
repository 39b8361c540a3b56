package query

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/uid"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

// modified returns the transfer syntax and the data set (after the file
// meta) of a pydicom test file changed by dcmodify with args.
func modified(t *testing.T, name string, args ...string) (string, []byte) {
	t.Helper()
	src := "/usr/lib/python3/dist-packages/pydicom/data/test_files/" + name
	if _, err := os.Stat(src); err != nil {
		pgtest.Unavailable(t, "python3-pydicom test files", err)
	}
	dcmodify, err := exec.LookPath("dcmodify")
	if err != nil {
		pgtest.Unavailable(t, "DCMTK (dcmodify)", err)
	}
	f := filepath.Join(t.TempDir(), name)
	raw, err := os.ReadFile(src)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(f, raw, 0o600))
	out, err := exec.Command(dcmodify, append(append([]string{"-nb"}, args...), f)...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	raw, err = os.ReadFile(f)
	require.NoError(t, err)
	h, rest, err := header.ReadFileMeta(bytes.NewReader(raw), header.Options{})
	require.NoError(t, err)
	body, err := io.ReadAll(rest)
	require.NoError(t, err)
	return h.TransferSyntax, body
}

// decoded transcodes a data set in ts to Explicit VR Little Endian and
// reads the result.
func decoded(t *testing.T, ts string, body []byte) *header.Header {
	t.Helper()
	in := dimse.Instance{TransferSyntax: ts, Open: func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(body)), nil
	}}
	conv, err := Transcode(context.Background(), in, []string{uid.ExplicitVRLittleEndian})
	require.NoError(t, err)
	rc, err := conv.Open(context.Background())
	require.NoError(t, err)
	out, err := io.ReadAll(rc)
	require.NoError(t, err)
	got, err := header.Read(bytes.NewReader(out), header.Options{TransferSyntax: uid.ExplicitVRLittleEndian})
	require.NoError(t, err)
	return got
}

// TestDecodedLossyKeepsItsMark: a JPEG baseline instance decoded to native
// pixels says Lossy Image Compression 01 (and the method) even when the
// sender left the attribute out; native pixels could not show it otherwise.
func TestDecodedLossyKeepsItsMark(t *testing.T) {
	ts, body := modified(t, "SC_rgb_jpeg_dcmtk.dcm", "-ea", "(0028,2110)", "-ea", "(0028,2114)")
	require.Equal(t, uid.JPEGBaseline8Bit, ts)
	got := decoded(t, ts, body)
	require.Equal(t, "01", got.Dataset.Get(tagLossyImageCompression))
	require.Equal(t, "ISO_10918_1", got.Dataset.Get(tagLossyImageCompressionMethod))
	require.False(t, got.PixelData.Encapsulated())
}

// TestDecodedReversibleJPEG2000KeepsItsLosslessMark: JPEG 2000 Image
// Compression (.91) and JPEG-LS near-lossless may be lossless (a reversible
// wavelet, NEAR=0); a sender that says Lossy Image Compression 00 knows, so
// the decoded instance is not relabelled lossy.
func TestDecodedReversibleJPEG2000KeepsItsLosslessMark(t *testing.T) {
	_, body := modified(t, "MR_small_jp2klossless.dcm", "-i", "(0028,2110)=00")
	// The same reversible code stream sent as JPEG 2000 Image Compression.
	got := decoded(t, uid.JPEG2000, body)
	require.Equal(t, "00", got.Dataset.Get(tagLossyImageCompression))
	require.False(t, got.Dataset.Has(tagLossyImageCompressionMethod))
	require.False(t, got.PixelData.Encapsulated())
}
