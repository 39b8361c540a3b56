package media

// jpegScrub blanks, in place and keeping every length, what a JPEG (or
// JPEG-LS) bitstream in encapsulated pixel data carries besides the image:
// the payload of application segments other than APP0 (JFIF), APP2 (ICC
// profile) and APP14 (Adobe colour transform), e.g. Exif with dates, GPS
// position and camera serial number (APP1), XMP (APP1), IPTC (APP13); of
// comment segments (COM); and every byte after the end of image (EOI), where
// phones append further pictures. Blanked segments stay (zero bytes are no
// known identifier, decoders skip them), so fragment lengths, the Basic and
// Extended Offset Tables stay right and the pixel data still streams.
//
// It is a byte-wise state machine fed fragment by fragment; a fragment that
// starts with SOI (FF D8 FF) starts a new frame, other fragments continue
// the frame before. Anything that is not JPEG is left alone.
type jpegScrub struct {
	state  int
	marker byte
	length int // segment length being read
	remain int // payload bytes left in the segment
	blank  bool
}

const (
	jsNone       = iota // not JPEG: leave alone
	jsMarker            // expect FF before a marker
	jsMarkerCode        // after FF: the marker code (or fill FF)
	jsLen1
	jsLen2
	jsPayload
	jsEntropy   // scan data
	jsEntropyFF // FF in scan data
	jsAfterEOI  // after the end of image: blanked
)

// fragment starts a fragment whose first bytes are head.
func (s *jpegScrub) fragment(head []byte) {
	if len(head) >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF {
		*s = jpegScrub{state: jsMarker}
	}
}

// blanked reports whether the payload of a segment with the marker is
// blanked.
func blankedSegment(m byte) bool {
	switch {
	case m == 0xFE: // COM
		return true
	case m >= 0xE0 && m <= 0xEF: // APPn
		return m != 0xE0 && m != 0xE2 && m != 0xEE
	}
	return false
}

// scrub processes the next bytes of the fragment in place.
func (s *jpegScrub) scrub(p []byte) {
	for i := 0; i < len(p); i++ {
		b := p[i]
		switch s.state {
		case jsNone:
			return
		case jsMarker:
			if b != 0xFF {
				s.state = jsNone
				return
			}
			s.state = jsMarkerCode
		case jsMarkerCode:
			switch {
			case b == 0xFF: // fill byte
			case b == 0xD8 || b == 0x01 || (b >= 0xD0 && b <= 0xD7):
				s.state = jsMarker
			case b == 0xD9:
				s.state = jsAfterEOI
			default:
				s.marker, s.state = b, jsLen1
			}
		case jsLen1:
			s.length, s.state = int(b)<<8, jsLen2
		case jsLen2:
			s.length |= int(b)
			if s.length < 2 {
				s.state = jsNone
				return
			}
			s.remain, s.blank = s.length-2, blankedSegment(s.marker)
			s.state = jsPayload
			if s.remain == 0 {
				s.endSegment()
			}
		case jsPayload:
			n := min(s.remain, len(p)-i)
			if s.blank {
				clear(p[i : i+n])
			}
			s.remain -= n
			i += n - 1
			if s.remain == 0 {
				s.endSegment()
			}
		case jsEntropy:
			// Only FF D9 ends the scans: in scan data FF is followed by 00
			// (JPEG) or a byte below 80 (JPEG-LS), RSTn or further markers
			// of a progressive image.
			j := i
			for j < len(p) && p[j] != 0xFF {
				j++
			}
			i = j
			if j < len(p) {
				s.state = jsEntropyFF
			}
		case jsEntropyFF:
			switch b {
			case 0xD9:
				s.state = jsAfterEOI
			case 0xFF:
			default:
				s.state = jsEntropy
			}
		case jsAfterEOI:
			clear(p[i:])
			return
		}
	}
}

func (s *jpegScrub) endSegment() {
	if s.marker == 0xDA { // SOS: scan data follows
		s.state = jsEntropy
		return
	}
	s.state = jsMarker
}
