// Package pixel decodes DICOM pixel data frame by frame: a CBCT volume is
// never whole in memory. Open reads only the fragment item headers; Frame
// reads and decodes one frame into a compact typed buffer (8, 16 or 32 bits
// per sample, pixel interleaved, normalised: see Frame).
//
//	h, _ := header.Read(io.NewSectionReader(r, 0, size), header.Options{})
//	frames, _ := pixel.Open(r, size, h, pixel.Options{})
//	f, _ := frames.Frame(ctx, frames.Len()/2)
//	raw, _ := frames.Raw(0) // stored bytes, for WADO-RS transfer-syntax=*
//
// Transfer syntaxes: implicit VR little endian, explicit VR little and big
// endian (OW swapped per 16-bit word, as PS3.5 and DCMTK do), deflated
// (inflated on the fly; random access restarts the inflater), RLE Lossless,
// JPEG baseline (.50), extended 12-bit (.51), lossless process 14 (.57,
// every predictor and point transform) and SV1 (.70), JPEG-LS lossless and
// near-lossless (.80/.81), JPEG 2000 lossless and lossy (.90/.91).
// Photometric interpretations: MONOCHROME1/2, RGB, YBR_FULL, YBR_FULL_422
// (expanded to YBR_FULL for native data; converted to RGB by JPEG), PALETTE
// COLOR (indices; dicom/render applies the palette); 1, 8, 16 and 32 bits
// allocated, any bits stored and high bit, signed or unsigned, planar
// configuration 0 or 1, multi-frame.
//
// Encapsulated frames are found by the Extended Offset Table, else the
// Basic Offset Table, else one fragment per frame, else by the start marker
// each frame's bitstream begins with (JPEG SOI, JPEG 2000 SOC). A wrong
// offset table falls back to the fragments.
//
// Codec choice (documented decision):
//   - JPEG baseline, extended 12-bit and lossless are decoded by our own Go
//     package dicom/pixel/jpeg, written from ITU-T T.81: libjpeg-turbo in
//     Debian 12 is 8-bit only without process 14, and Go's image/jpeg does
//     only 8-bit baseline/progressive (still used for progressive 8-bit).
//     Lossless output is bit-exact with DCMTK; lossy output within ±1 of
//     DCMTK's IJG decoder before colour conversion (within ±3 after it,
//     which amplifies the IDCT's rounding by up to 1.772).
//   - JPEG colour follows the header as DCMTK does: YBR_* photometrics are
//     converted to RGB; RGB is kept unless a JFIF marker declares YCbCr.
//   - JPEG-LS (CharLS 2.4) and JPEG 2000 (OpenJPEG 2.5) run through cgo in
//     worker subprocesses (package codec): a crash or endless loop on
//     hostile data kills a worker, never the server. Lossy JPEG 2000 values
//     outside Bits Stored are clamped (GDCM widens Bits Stored instead).
//   - RLE, native and deflate are plain Go.
//
// Untrusted input: the header's frame size is checked against
// Options.MaxFrameBytes before allocating, every codec compares the
// bitstream's size with the header's before decoding, and errors wrap
// ErrMalformed, ErrUnsupported or ErrLimit; Frame recovers from panics.
// Fuzz targets cover RLE, the JPEG decoders and the fragment table.
package pixel
