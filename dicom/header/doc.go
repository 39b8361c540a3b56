// Package header is Molar's bounded, streaming DICOM data set reader and a
// small encoder.
//
// Read parses a data set from an io.Reader, with or without the Part-10
// preamble and file meta, in implicit VR little endian, explicit VR little or
// big endian, or deflated explicit VR little endian (inflated on the fly),
// and stops before the top-level Pixel Data (7FE0,0010): the pixel data is
// never loaded. The result holds every element (tag, VR, raw value bytes,
// sequences nested) and PixelDataInfo tells where the pixel data element
// starts, so ingest can keep streaming the rest (see Reader.Rest and the
// note on NewReader for the tee pattern).
//
// The reader is meant for untrusted input (C-STORE, STOW-RS, imports):
// value lengths are checked against Options.MaxValueLength before any
// allocation and values are read in steps (a lying length costs only the
// bytes actually sent), the total header size, nesting depth and element
// count are capped, and hostile input yields ErrTruncated, ErrMalformed or
// ErrLimit, never a panic. Undefined-length sequences and items, UN elements
// holding implicit VR sequences and nested encapsulated data are handled.
//
// Text helpers (Dataset.String, Strings, UID, Int, Floats, Sequence) decode
// ISO_IR 100 (Latin-1) and ISO_IR 192 (UTF-8) to Go strings; other and
// unknown character sets pass through (invalid UTF-8 falls back to Latin-1).
// Dataset.Encode writes a data set in any of the uncompressed syntaxes (for
// C-FIND identifiers and responses); WriteFileHeader writes a Part-10
// preamble and meta.
//
// suyashkumar/dicom is used only for its data dictionary (VRs of implicit VR
// data sets) here, and as a test oracle.
package header
