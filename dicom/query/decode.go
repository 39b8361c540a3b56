package query

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/pixel"
	"github.com/molar-health/molar/dicom/uid"
)

// Attributes rewritten when pixel data is decompressed.
var (
	tagPlanarConfiguration = header.NewTag(0x0028, 0x0006)
	tagHighBit             = header.NewTag(0x0028, 0x0102)
	tagBitsStored          = header.NewTag(0x0028, 0x0101)
	tagPhotometric         = header.NewTag(0x0028, 0x0004)

	tagLossyImageCompression       = header.NewTag(0x0028, 0x2110)
	tagLossyImageCompressionMethod = header.NewTag(0x0028, 0x2114)
)

// lossyMethod is the Lossy Image Compression Method (CID 7007) of a lossy
// transfer syntax.
func lossyMethod(ts string) string {
	switch ts {
	case uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit:
		return "ISO_10918_1"
	case uid.JPEGLSNearLossless:
		return "ISO_14495_1"
	case uid.JPEG2000:
		return "ISO_15444_1"
	}
	return ""
}

// mayBeLossless reports a lossy transfer syntax that may carry lossless
// data: JPEG 2000 Image Compression with the reversible wavelet, JPEG-LS
// near-lossless with NEAR 0 (PS3.5 A.4.4, A.4.3). Only the sender knows.
func mayBeLossless(ts string) bool {
	return ts == uid.JPEG2000 || ts == uid.JPEGLSNearLossless
}

// decompress writes a compressed data set (read from r, in syntax from)
// as native explicit or implicit VR little endian: the data set is spooled
// to a temporary file (compressed, small) and decoded frame by frame with
// dicom/pixel, one frame in memory at a time.
func decompress(ctx context.Context, w io.Writer, r io.Reader, from, to string) error {
	tmp, err := os.CreateTemp("", "molar-transcode-*.dcm")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	size, err := io.Copy(tmp, r)
	if err != nil {
		return fmt.Errorf("query: transcode: %w", err)
	}
	h, err := header.Read(io.NewSectionReader(tmp, 0, size), header.Options{TransferSyntax: from})
	if err != nil {
		return fmt.Errorf("query: transcode: %w", err)
	}
	frames, err := pixel.Open(tmp, size, h, pixel.Options{})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCannotTranscode, err)
	}
	// Decode the first frame to learn the output layout.
	var first *pixel.Frame
	if frames.Len() > 0 {
		if first, err = frames.Frame(ctx, 0); err != nil {
			return fmt.Errorf("%w: %w", ErrCannotTranscode, err)
		}
	}
	d := h.Dataset
	vr := "OW"
	bytesPer := 2
	if first != nil {
		switch first.Container {
		case 8:
			vr, bytesPer = "OB", 1
		case 32:
			bytesPer = 4
		}
		d.SetString(tagPhotometric, "CS", first.Photometric)
		if first.Samples > 1 {
			d.SetUint16(tagPlanarConfiguration, 0)
		}
		if bs, ok := d.Int(tagBitsStored); ok {
			d.SetUint16(tagHighBit, uint16(bs-1))
		}
	}
	d.Remove(pixel.TagExtendedOffsetTable)
	d.Remove(pixel.TagExtendedOffsetTableLength)
	if src, _ := uid.LookupTransferSyntax(from); src.Lossy && !(mayBeLossless(from) && d.Get(tagLossyImageCompression) == "00") {
		// Native pixels no longer show their lossy past: the attribute
		// must (PS3.3 C.7.6.1.1.5), whatever the sender wrote, except
		// a sender's 00 in a syntax that may be lossless.
		d.SetString(tagLossyImageCompression, "CS", "01")
		if m := lossyMethod(from); m != "" && !d.Has(tagLossyImageCompressionMethod) {
			d.SetString(tagLossyImageCompressionMethod, "CS", m)
		}
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	if err := d.WriteTo(bw, to); err != nil {
		return err
	}
	if first == nil {
		return bw.Flush()
	}
	total := uint64(frames.Len()) * uint64(first.Len()) * uint64(bytesPer)
	if total%2 == 1 {
		total++
	}
	if total > 0xFFFFFFFE {
		return fmt.Errorf("%w: decoded pixel data exceeds 4 GiB", ErrCannotTranscode)
	}
	tts, _ := uid.LookupTransferSyntax(to)
	hdr := binary.LittleEndian.AppendUint16(nil, 0x7FE0)
	hdr = binary.LittleEndian.AppendUint16(hdr, 0x0010)
	if tts.ExplicitVR {
		hdr = append(hdr, vr[0], vr[1], 0, 0)
	}
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(total))
	if _, err := bw.Write(hdr); err != nil {
		return err
	}
	var written uint64
	buf := make([]byte, 0, 64<<10)
	for i := 0; i < frames.Len(); i++ {
		f := first
		if i > 0 {
			if f, err = frames.Frame(ctx, i); err != nil {
				return fmt.Errorf("%w: %w", ErrCannotTranscode, err)
			}
		}
		for j := 0; j < f.Len(); j++ {
			switch bytesPer {
			case 1:
				buf = append(buf, f.Pix8[j])
			case 2:
				buf = binary.LittleEndian.AppendUint16(buf, f.Pix16[j])
			default:
				buf = binary.LittleEndian.AppendUint32(buf, f.Pix32[j])
			}
			if len(buf) >= 60<<10 {
				if _, err := bw.Write(buf); err != nil {
					return err
				}
				written += uint64(len(buf))
				buf = buf[:0]
			}
		}
	}
	written += uint64(len(buf))
	if written < total {
		buf = append(buf, 0)
	}
	if _, err := bw.Write(buf); err != nil {
		return err
	}
	return bw.Flush()
}
