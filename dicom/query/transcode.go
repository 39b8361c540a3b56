package query

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/uid"
)

// ErrCannotTranscode: the stored syntax cannot be converted to any the
// receiver accepts (compressed pixel data without a decoder).
var ErrCannotTranscode = errors.New("query: cannot convert to an accepted transfer syntax")

// Transcode converts instances for C-MOVE/C-GET sub-operations when the
// receiver does not accept the stored transfer syntax: between the
// uncompressed syntaxes (implicit/explicit VR little endian, explicit VR big
// endian, deflated as source), streaming (the pixel data is copied, byte
// swapped when the byte order changes, never held), and from the
// compressed syntaxes to little endian through dicom/pixel's decoders (as
// Orthanc does; getscu accepts only uncompressed syntaxes).
func Transcode(ctx context.Context, inst dimse.Instance, accepted []string) (dimse.Instance, error) {
	target := ""
	for _, pref := range []string{uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian, uid.ExplicitVRBigEndian} {
		if slices.Contains(accepted, pref) {
			target = pref
			break
		}
	}
	src, _ := uid.LookupTransferSyntax(inst.TransferSyntax)
	if src.Encapsulated && target == uid.ExplicitVRBigEndian {
		target = ""
	}
	if target == "" {
		return dimse.Instance{}, fmt.Errorf("%w: stored %s, accepted %v", ErrCannotTranscode, uid.Name(inst.TransferSyntax), accepted)
	}
	out := inst
	out.TransferSyntax = target
	open := inst.Open
	out.Open = func(ctx context.Context) (io.ReadCloser, error) {
		rc, err := open(ctx)
		if err != nil {
			return nil, err
		}
		pr, pw := io.Pipe()
		go func() {
			var err error
			if src.Encapsulated {
				err = decompress(ctx, pw, rc, inst.TransferSyntax, target)
			} else {
				err = convert(pw, rc, inst.TransferSyntax, target)
			}
			rc.Close()
			pw.CloseWithError(err)
		}()
		return pr, nil
	}
	return out, nil
}

// convert re-encodes a native data set from one uncompressed syntax to another.
func convert(w io.Writer, r io.Reader, from, to string) error {
	hr := header.NewReader(r, header.Options{TransferSyntax: from})
	h, err := hr.ReadHeader()
	if err != nil {
		return fmt.Errorf("query: transcode: %w", err)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	if err := h.Dataset.WriteTo(bw, to); err != nil {
		return err
	}
	if p := h.PixelData; p != nil {
		if p.Encapsulated() {
			return fmt.Errorf("%w: encapsulated pixel data", ErrCannotTranscode)
		}
		rest := hr.Rest()
		if _, err := io.CopyN(io.Discard, rest, p.ValueOffset-p.Offset); err != nil {
			return fmt.Errorf("query: transcode: %w", err)
		}
		tts, _ := uid.LookupTransferSyntax(to)
		var bo binary.AppendByteOrder = binary.LittleEndian
		if tts.BigEndian {
			bo = binary.BigEndian
		}
		vr := p.VR
		if vr == "" || vr == "UN" {
			vr = "OW"
		}
		var hdr []byte
		hdr = bo.AppendUint16(hdr, uint16(p.Tag>>16))
		hdr = bo.AppendUint16(hdr, uint16(p.Tag))
		if tts.ExplicitVR {
			hdr = append(hdr, vr[0], vr[1], 0, 0)
		}
		hdr = bo.AppendUint32(hdr, p.Length)
		if _, err := bw.Write(hdr); err != nil {
			return err
		}
		fts, _ := uid.LookupTransferSyntax(from)
		var src io.Reader = io.LimitReader(rest, int64(p.Length))
		unit := 0
		switch vr {
		case "OW":
			unit = 2
		case "OF", "OL":
			unit = 4
		case "OD", "OV":
			unit = 8
		}
		if fts.BigEndian != tts.BigEndian && unit > 0 {
			src = &swapReader{r: src, unit: unit}
		}
		n, err := io.Copy(bw, src)
		if err != nil {
			return fmt.Errorf("query: transcode: %w", err)
		}
		if n != int64(p.Length) {
			return fmt.Errorf("query: transcode: pixel data truncated")
		}
	}
	return bw.Flush()
}

// swapReader reverses the bytes of every unit-sized word.
type swapReader struct {
	r    io.Reader
	unit int
	buf  []byte
	out  []byte
}

func (s *swapReader) Read(p []byte) (int, error) {
	if len(s.out) == 0 {
		if s.buf == nil {
			s.buf = make([]byte, 64<<10)
		}
		n, err := io.ReadFull(s.r, s.buf)
		n -= n % s.unit
		if n == 0 {
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			return 0, err
		}
		b := s.buf[:n]
		for i := 0; i+s.unit <= n; i += s.unit {
			for a, c := i, i+s.unit-1; a < c; a, c = a+1, c-1 {
				b[a], b[c] = b[c], b[a]
			}
		}
		s.out = b
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}
