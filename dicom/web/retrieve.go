package web

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/query"
	"github.com/molar-health/molar/dicom/uid"
)

// How an instance is sent by WADO-RS retrieve and WADO-URI (PS3.18 8.7.3.4
// and 8.2.11): the default transfer syntax of DICOM web services is
// Explicit VR Little Endian, so instances stored otherwise are converted
// (uncompressed syntaxes re-encoded, compressed pixel data decoded with
// dicom/pixel, as for C-MOVE) unless the client asks for them as stored.

// delivery is how one instance goes out.
type delivery struct {
	ts      string // the transfer syntax to send; the stored one = as stored
	lenient bool   // when ts cannot be reached (no decoder, too large): send as stored
}

// convertible reports whether Molar can convert an instance stored in
// from to the transfer syntax to (decoding may still fail on the data).
func convertible(from, to string) bool {
	src, known := uid.LookupTransferSyntax(from)
	switch to {
	case uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian:
		return known
	case uid.ExplicitVRBigEndian:
		return known && !src.Encapsulated
	}
	return false
}

// retrievePlan picks, for the client's choices in order of preference, the
// first under which every instance can be sent, and says how each is sent.
// Without a transfer-syntax parameter the default applies: Explicit VR
// Little Endian, except that lossy compressed instances stay as stored
// (PS3.18 8.7.3.4 note 2: decoding them adds bytes, not quality), and an
// instance that cannot be converted (no decoder for its syntax, decoded
// pixel data beyond 4 GiB) is sent as stored, its part naming its syntax.
func retrievePlan(choices []partChoice, insts []index.Instance) ([]delivery, bool) {
	for _, c := range choices {
		plan := make([]delivery, len(insts))
		ok := true
		for i, in := range insts {
			switch stored, known := uid.LookupTransferSyntax(in.TransferSyntax); {
			case c.ts == "*" || c.ts == in.TransferSyntax, c.ts == "" && in.TransferSyntax == uid.ExplicitVRLittleEndian:
				plan[i] = delivery{ts: in.TransferSyntax}
			case c.ts == "" && (stored.Lossy || !known): // lossy, or video and others Molar does not decode
				plan[i] = delivery{ts: in.TransferSyntax}
			case c.ts == "":
				plan[i] = delivery{ts: uid.ExplicitVRLittleEndian, lenient: true}
			case convertible(in.TransferSyntax, c.ts):
				plan[i] = delivery{ts: c.ts}
			default:
				ok = false
			}
		}
		if ok {
			return plan, true
		}
	}
	return nil, false
}

// uriDelivery is WADO-URI's rule (PS3.18 8.2.11): the transfer syntax asked
// for if possible, else Explicit VR Little Endian (never implicit VR or big
// endian); the stored object when it cannot be converted.
func uriDelivery(in index.Instance, asked string) delivery {
	if asked != "" && asked == in.TransferSyntax {
		return delivery{ts: asked}
	}
	if _, known := uid.LookupTransferSyntax(in.TransferSyntax); !known || in.TransferSyntax == uid.ExplicitVRLittleEndian {
		return delivery{ts: in.TransferSyntax}
	}
	return delivery{ts: uid.ExplicitVRLittleEndian, lenient: true}
}

// openPart10 opens the Part-10 file of in as d says. size is -1 when the
// instance is converted (its length is known only once written). A
// conversion that cannot be done is found before anything is returned:
// the first bytes of the converted data set are read here (decoding the
// first frame), so the caller can still choose another way.
func (s *Service) openPart10(ctx context.Context, in index.Instance, d delivery) (rc io.ReadCloser, ts string, size int64, err error) {
	if d.ts == in.TransferSyntax {
		rc, info, err := s.Store.Get(ctx, in.ObjectKey, nil)
		if err != nil {
			return nil, "", 0, err
		}
		return rc, in.TransferSyntax, info.Size, nil
	}
	conv, err := query.Transcode(ctx, query.StoredInstance(s.Store, in), []string{d.ts})
	var data io.ReadCloser
	if err == nil {
		data, err = conv.Open(ctx)
	}
	var br *bufio.Reader
	if err == nil {
		br = bufio.NewReaderSize(data, 64<<10)
		if _, err = br.Peek(1); err != nil {
			data.Close()
		}
	}
	if err != nil {
		if d.lenient && errors.Is(err, query.ErrCannotTranscode) {
			return s.openPart10(ctx, in, delivery{ts: in.TransferSyntax})
		}
		return nil, "", 0, fmt.Errorf("dicomweb: instance %s as %s: %w", in.SOPInstanceUID, uid.Name(d.ts), err)
	}
	var meta bytes.Buffer
	if err := header.WriteFileHeader(&meta, in.SOPClassUID, in.SOPInstanceUID, d.ts); err != nil {
		data.Close()
		return nil, "", 0, err
	}
	return readCloser{io.MultiReader(&meta, br), data}, d.ts, -1, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}
