package media

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"strings"
	"time"

	"golang.org/x/image/tiff"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/uid"
)

// SOP classes of wrapped objects.
const (
	EncapsulatedSTL = "1.2.840.10008.5.1.4.1.1.104.3"
)

// MaxPixels caps the size of a picture to wrap (decoded in memory; DICOM
// rows and columns are 16-bit anyway).
const MaxPixels = 200 << 20

// Kind is what a non-DICOM file holds.
type Kind string

// Kinds Wrap takes.
const (
	KindUnknown Kind = ""
	KindJPEG    Kind = "jpeg"
	KindPNG     Kind = "png"
	KindTIFF    Kind = "tiff"
	KindSTL     Kind = "stl"
	KindPLY     Kind = "ply"
)

// ErrUnsupported: the bytes are none of the kinds Wrap takes.
var ErrUnsupported = errors.New("media: not a JPEG, PNG, TIFF, STL or PLY file")

// ErrInvalid: the file claims a kind but cannot be read as one.
var ErrInvalid = errors.New("media: damaged or unsupported file")

// Detect tells the kind of a file from its first bytes (at least 512 when
// the file is that long) and its size (STL binary files are recognised by
// their exact size; -1 when unknown).
func Detect(head []byte, size int64) Kind {
	switch {
	case bytes.HasPrefix(head, []byte{0xFF, 0xD8, 0xFF}):
		return KindJPEG
	case bytes.HasPrefix(head, []byte("\x89PNG\r\n\x1a\n")):
		return KindPNG
	case bytes.HasPrefix(head, []byte("II*\x00")), bytes.HasPrefix(head, []byte("MM\x00*")):
		return KindTIFF
	case bytes.HasPrefix(head, []byte("ply\n")), bytes.HasPrefix(head, []byte("ply\r\n")):
		return KindPLY
	}
	if len(head) >= 84 && size >= 84 {
		n := int64(binary.LittleEndian.Uint32(head[80:84]))
		if 84+50*n == size {
			return KindSTL
		}
	}
	if t := bytes.TrimLeft(head, " \t\r\n"); bytes.HasPrefix(t, []byte("solid")) && bytes.Contains(head, []byte("facet")) {
		return KindSTL
	}
	return KindUnknown
}

// Patient is whom a wrapped object belongs to, as DICOM values: the Patient
// ID (the CPR number's digits), the name as PN (Family^Given), the birth
// date as DA and the sex (M, F, O or "").
type Patient struct {
	ID, Name, BirthDate, Sex string
}

// WrapOptions say whose the object is and when it was made.
type WrapOptions struct {
	Patient Patient
	// Scope keeps the derived UIDs of one person apart from another's (and
	// one municipality's from another's), e.g. "tenant/1/person/42".
	Scope string
	// Time is when the picture or scan was made (the file's modification
	// time): the content date and time, and the day of the study the object
	// goes into. Zero when unknown (a browser upload): today, with no
	// content time, so that the same file wrapped again that day is the
	// same object, byte for byte.
	Time time.Time
	// Now is the clock for an unknown Time (tests set it; nil: time.Now).
	Now func() time.Time
}

// Wrapped is a DICOM object made from a file.
type Wrapped struct {
	Kind                                Kind
	SOPClassUID, SOPInstanceUID         string
	StudyInstanceUID, SeriesInstanceUID string
	TransferSyntax                      string
	File                                []byte // Part-10 file
}

// Study and series of wrapped objects: one study per person and day,
// one series per kind (photographs, other images, 3D models).
const (
	studyDescription = "Importerede billeder og scanninger"
	implementation   = "MOLAR"
)

// Wrap makes a Part-10 DICOM file of a photograph or scan: JPEG, PNG and
// TIFF become VL Photographic Image (colour) or Secondary Capture (grey)
// images, a baseline JPEG kept as it is (JPEG Baseline encapsulated),
// others as native pixels; STL becomes Encapsulated STL, PLY too (converted
// to binary STL). The UIDs derive from opt.Scope, the day of opt.Time and
// the content: wrapping the same file again gives the same object.
func Wrap(data []byte, opt WrapOptions) (Wrapped, error) {
	timeKnown := !opt.Time.IsZero()
	if !timeKnown {
		now := time.Now
		if opt.Now != nil {
			now = opt.Now
		}
		opt.Time = now().In(auth.Copenhagen) // the Danish date, not the server's
	}
	kind := Detect(data, int64(len(data)))
	sum := sha256.Sum256(data)
	w := Wrapped{Kind: kind, SOPInstanceUID: UIDFrom("molar-wrap-instance", opt.Scope, hex.EncodeToString(sum[:]))}
	w.StudyInstanceUID = UIDFrom("molar-wrap-study", opt.Scope, opt.Time.Format("20060102"))
	var d *header.Dataset
	var err error
	switch kind {
	case KindJPEG:
		d, err = wrapJPEG(data, &w)
	case KindPNG, KindTIFF:
		var img image.Image
		var cfg image.Config
		if kind == KindPNG {
			cfg, err = png.DecodeConfig(bytes.NewReader(data))
		} else {
			cfg, err = tiff.DecodeConfig(bytes.NewReader(data))
		}
		if err == nil && (cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > 65535 || cfg.Height > 65535 || cfg.Width*cfg.Height > MaxPixels) {
			err = fmt.Errorf("%dx%d pixels is more than Molar wraps", cfg.Width, cfg.Height)
		}
		if err != nil {
			return Wrapped{}, fmt.Errorf("%w: %s: %w", ErrInvalid, kind, err)
		}
		if kind == KindPNG {
			img, err = png.Decode(bytes.NewReader(data))
		} else {
			img, err = tiff.Decode(bytes.NewReader(data))
		}
		if err != nil {
			return Wrapped{}, fmt.Errorf("%w: %s: %w", ErrInvalid, kind, err)
		}
		d = nativeImage(img, &w, false)
	case KindSTL, KindPLY:
		stl := data
		if kind == KindPLY {
			if stl, err = PLYToSTL(data); err != nil {
				return Wrapped{}, err
			}
		} else if err := checkSTL(data); err != nil {
			return Wrapped{}, err
		}
		d = wrapSTL(stl, opt, &w)
	default:
		return Wrapped{}, ErrUnsupported
	}
	if err != nil {
		return Wrapped{}, err
	}
	common(d, opt, &w, timeKnown)
	var buf bytes.Buffer
	buf.Grow(len(data) + 4096)
	if err := header.WriteFileHeader(&buf, w.SOPClassUID, w.SOPInstanceUID, w.TransferSyntax); err != nil {
		return Wrapped{}, fmt.Errorf("media: wrap: %w", err)
	}
	if err := d.WriteTo(&buf, w.TransferSyntax); err != nil {
		return Wrapped{}, fmt.Errorf("media: wrap: %w", err)
	}
	w.File = buf.Bytes()
	return w, nil
}

func tag(g, e uint16) header.Tag { return header.NewTag(g, e) }

// common sets the patient, study, series and SOP common attributes.
func common(d *header.Dataset, opt WrapOptions, w *Wrapped, timeKnown bool) {
	t := opt.Time
	modality, seriesNo, seriesDesc := "XC", "1", "Fotos"
	switch w.SOPClassUID {
	case uid.SecondaryCaptureImage:
		modality, seriesNo, seriesDesc = "OT", "2", "Billeder"
	case EncapsulatedSTL:
		modality, seriesNo, seriesDesc = "M3D", "3", "3D-scanninger"
	}
	w.SeriesInstanceUID = UIDFrom("molar-wrap-series", w.StudyInstanceUID, w.SOPClassUID)
	d.SetString(header.TagSpecificCharacterSet, "CS", "ISO_IR 192")
	d.SetString(header.TagSOPClassUID, "UI", w.SOPClassUID)
	d.SetString(header.TagSOPInstanceUID, "UI", w.SOPInstanceUID)
	d.SetString(header.TagStudyDate, "DA", t.Format("20060102"))
	d.SetString(tag(0x0008, 0x0030), "TM", "")
	d.SetString(tag(0x0008, 0x0023), "DA", t.Format("20060102"))
	if timeKnown {
		d.SetString(tag(0x0008, 0x0033), "TM", t.Format("150405"))
		d.SetString(tag(0x0008, 0x002A), "DT", t.Format("20060102150405"))
	} else {
		d.SetString(tag(0x0008, 0x0033), "TM", "") // not known: the upload's time would make each upload another object
	}
	d.SetString(header.TagAccessionNumber, "SH", "")
	d.SetString(header.TagModality, "CS", modality)
	if !d.Has(tag(0x0008, 0x0070)) {
		d.SetString(tag(0x0008, 0x0070), "LO", "")
	}
	d.SetString(tag(0x0008, 0x0090), "PN", "")
	d.SetString(tag(0x0008, 0x1030), "LO", studyDescription)
	d.SetString(tag(0x0008, 0x103E), "LO", seriesDesc)
	d.SetString(header.TagPatientName, "PN", opt.Patient.Name)
	d.SetString(header.TagPatientID, "LO", opt.Patient.ID)
	d.SetString(header.TagPatientBirthDate, "DA", opt.Patient.BirthDate)
	d.SetString(tag(0x0010, 0x0040), "CS", opt.Patient.Sex)
	d.SetString(header.TagStudyInstanceUID, "UI", w.StudyInstanceUID)
	d.SetString(header.TagSeriesInstanceUID, "UI", w.SeriesInstanceUID)
	d.SetString(tag(0x0020, 0x0010), "SH", "")
	d.SetString(tag(0x0020, 0x0011), "IS", seriesNo)
	if !d.Has(tag(0x0020, 0x0013)) {
		d.SetString(tag(0x0020, 0x0013), "IS", "")
	}
}

// imageModules sets the image attributes shared by native and JPEG images.
func imageModules(d *header.Dataset, w *Wrapped, colour bool, lossy bool) {
	if colour {
		w.SOPClassUID = uid.VLPhotographicImage
		d.SetString(tag(0x0008, 0x0008), "CS", "ORIGINAL", "PRIMARY")
		d.SetSequence(tag(0x0040, 0x0555)) // Acquisition Context Sequence (type 2)
	} else {
		w.SOPClassUID = uid.SecondaryCaptureImage
		d.SetString(tag(0x0008, 0x0008), "CS", "DERIVED", "SECONDARY")
		d.SetString(tag(0x0008, 0x0064), "CS", "WSD") // Conversion Type: workstation
	}
	d.SetString(tag(0x0020, 0x0020), "CS", "")   // Patient Orientation (type 2)
	d.SetString(tag(0x0028, 0x0301), "CS", "NO") // Burned In Annotation
	if lossy {
		d.SetString(tag(0x0028, 0x2110), "CS", "01")
		d.SetString(tag(0x0028, 0x2114), "CS", "ISO_10918_1")
	} else {
		d.SetString(tag(0x0028, 0x2110), "CS", "00")
	}
}

func pixelModule(d *header.Dataset, samples, rows, cols, bits int, photometric string) {
	d.SetUint16(tag(0x0028, 0x0002), uint16(samples))
	d.SetString(tag(0x0028, 0x0004), "CS", photometric)
	if samples > 1 {
		d.SetUint16(tag(0x0028, 0x0006), 0)
	}
	d.SetUint16(header.TagRows, uint16(rows))
	d.SetUint16(header.TagColumns, uint16(cols))
	d.SetUint16(tag(0x0028, 0x0100), uint16(bits))
	d.SetUint16(tag(0x0028, 0x0101), uint16(bits))
	d.SetUint16(tag(0x0028, 0x0102), uint16(bits-1))
	d.SetUint16(tag(0x0028, 0x0103), 0)
}

// nativeImage stores decoded pixels: grey 8 or 16 bit as MONOCHROME2,
// anything else as 8-bit RGB (alpha dropped). lossy says the pixels came
// from a lossy JPEG (Lossy Image Compression 01: once lossy, always).
func nativeImage(img image.Image, w *Wrapped, lossy bool) *header.Dataset {
	d := header.NewDataset()
	b := img.Bounds()
	rows, cols := b.Dy(), b.Dx()
	w.TransferSyntax = uid.ExplicitVRLittleEndian
	var px []byte
	switch m := img.(type) {
	case *image.Gray:
		imageModules(d, w, false, lossy)
		pixelModule(d, 1, rows, cols, 8, "MONOCHROME2")
		px = make([]byte, 0, rows*cols)
		for y := b.Min.Y; y < b.Max.Y; y++ {
			i := m.PixOffset(b.Min.X, y)
			px = append(px, m.Pix[i:i+cols]...)
		}
		d.Set(&header.Element{Tag: header.TagPixelData, VR: "OB", Value: px})
		return d
	case *image.Gray16:
		imageModules(d, w, false, lossy)
		pixelModule(d, 1, rows, cols, 16, "MONOCHROME2")
		px = make([]byte, 0, 2*rows*cols)
		for y := b.Min.Y; y < b.Max.Y; y++ {
			i := m.PixOffset(b.Min.X, y)
			for x := 0; x < cols; x++ {
				px = append(px, m.Pix[i+2*x+1], m.Pix[i+2*x]) // big endian in Go, little in DICOM
			}
		}
		d.Set(&header.Element{Tag: header.TagPixelData, VR: "OW", Value: px})
		return d
	}
	imageModules(d, w, true, lossy)
	pixelModule(d, 3, rows, cols, 8, "RGB")
	px = make([]byte, 0, 3*rows*cols)
	switch m := img.(type) {
	case *image.NRGBA:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			i := m.PixOffset(b.Min.X, y)
			for x := 0; x < cols; x++ {
				px = append(px, m.Pix[i+4*x], m.Pix[i+4*x+1], m.Pix[i+4*x+2])
			}
		}
	default:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
				px = append(px, c.R, c.G, c.B)
			}
		}
	}
	if len(px)%2 == 1 {
		px = append(px, 0)
	}
	d.Set(&header.Element{Tag: header.TagPixelData, VR: "OB", Value: px})
	return d
}

// jpegInfo is what the frame header and APP segments of a JPEG say.
type jpegInfo struct {
	sof        byte // SOF marker (0xC0 baseline)
	precision  int
	rows, cols int
	comps      int
	subsampled bool
	adobeRGB   bool // Adobe APP14 transform 0 with 3 components
	jfif       bool
}

func parseJPEG(b []byte) (jpegInfo, error) {
	var in jpegInfo
	i := 2
	for i+4 <= len(b) {
		if b[i] != 0xFF {
			return in, fmt.Errorf("%w: jpeg: marker expected", ErrInvalid)
		}
		m := b[i+1]
		if m == 0xFF {
			i++
			continue
		}
		n := int(b[i+2])<<8 | int(b[i+3])
		if n < 2 || i+2+n > len(b) {
			return in, fmt.Errorf("%w: jpeg: truncated segment", ErrInvalid)
		}
		seg := b[i+4 : i+2+n]
		switch {
		case m == 0xE0 && bytes.HasPrefix(seg, []byte("JFIF\x00")):
			in.jfif = true
		case m == 0xEE && bytes.HasPrefix(seg, []byte("Adobe")) && len(seg) >= 12:
			in.adobeRGB = seg[11] == 0
		case m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC:
			if len(seg) < 6 {
				return in, fmt.Errorf("%w: jpeg: short frame header", ErrInvalid)
			}
			in.sof, in.precision = m, int(seg[0])
			in.rows, in.cols, in.comps = int(seg[1])<<8|int(seg[2]), int(seg[3])<<8|int(seg[4]), int(seg[5])
			if len(seg) < 6+3*in.comps {
				return in, fmt.Errorf("%w: jpeg: short frame header", ErrInvalid)
			}
			if in.comps == 3 {
				h0, v0 := seg[7]>>4, seg[7]&15
				for c := 1; c < 3; c++ {
					if h, v := seg[7+3*c]>>4, seg[7+3*c]&15; h != h0 || v != v0 {
						in.subsampled = true
					}
				}
			}
			return in, nil
		case m == 0xDA:
			return in, fmt.Errorf("%w: jpeg: no frame header", ErrInvalid)
		}
		i += 2 + n
	}
	return in, fmt.Errorf("%w: jpeg: no frame header", ErrInvalid)
}

// wrapJPEG keeps a baseline 8-bit grey or YCbCr/RGB JPEG as it is; other
// JPEGs (progressive, CMYK, 12-bit) are decoded and stored natively.
func wrapJPEG(data []byte, w *Wrapped) (*header.Dataset, error) {
	info, err := parseJPEG(data)
	if err != nil {
		return nil, err
	}
	if info.rows*info.cols > MaxPixels || info.cols > 65535 || info.rows > 65535 {
		return nil, fmt.Errorf("%w: jpeg: %dx%d pixels is more than Molar wraps", ErrInvalid, info.cols, info.rows)
	}
	img, err := jpeg.Decode(bytes.NewReader(data)) // also refuses truncated files
	if err != nil {
		return nil, fmt.Errorf("%w: jpeg: %w", ErrInvalid, err)
	}
	if info.sof != 0xC0 || info.precision != 8 || (info.comps != 1 && info.comps != 3) || info.rows == 0 {
		return nativeImage(img, w, true), nil // decoded from a lossy JPEG
	}
	d := header.NewDataset()
	w.TransferSyntax = uid.JPEGBaseline8Bit
	photometric := "MONOCHROME2"
	if info.comps == 3 {
		switch {
		case info.adobeRGB && !info.jfif:
			photometric = "RGB"
		case info.subsampled:
			photometric = "YBR_FULL_422"
		default:
			photometric = "YBR_FULL"
		}
	}
	imageModules(d, w, info.comps == 3, true)
	pixelModule(d, info.comps, info.rows, info.cols, 8, photometric)
	frag := data
	if len(frag)%2 == 1 {
		frag = append(append([]byte(nil), data...), 0)
	}
	var v bytes.Buffer
	v.Write([]byte{0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0}) // empty basic offset table
	v.Write([]byte{0xFE, 0xFF, 0x00, 0xE0})
	_ = binary.Write(&v, binary.LittleEndian, uint32(len(frag)))
	v.Write(frag)
	d.Set(&header.Element{Tag: header.TagPixelData, VR: "OB", Value: v.Bytes(), UndefinedLength: true})
	return d, nil
}

// wrapSTL builds the Encapsulated STL data set (PS3.3 A.85).
func wrapSTL(stl []byte, opt WrapOptions, w *Wrapped) *header.Dataset {
	w.SOPClassUID, w.TransferSyntax = EncapsulatedSTL, uid.ExplicitVRLittleEndian
	d := header.NewDataset()
	d.SetString(tag(0x0008, 0x0070), "LO", "Molar")                          // Manufacturer
	d.SetString(tag(0x0008, 0x1090), "LO", "Molar import")                   // Manufacturer's Model Name
	d.SetString(tag(0x0018, 0x1000), "LO", "1")                              // Device Serial Number
	d.SetString(tag(0x0018, 0x1020), "LO", header.MetaImplementationVersion) // Software Versions
	d.SetString(tag(0x0020, 0x0013), "IS", "1")
	d.SetString(tag(0x0020, 0x0052), "UI", UIDFrom("molar-wrap-frame", w.SOPInstanceUID))
	d.SetString(tag(0x0020, 0x1040), "LO", "")
	d.SetString(tag(0x0028, 0x0301), "CS", "NO")
	unit := header.NewDataset()
	unit.SetString(tag(0x0008, 0x0100), "SH", "mm")
	unit.SetString(tag(0x0008, 0x0102), "SH", "UCUM")
	unit.SetString(tag(0x0008, 0x0104), "LO", "mm")
	d.SetSequence(tag(0x0040, 0x08EA), unit) // Measurement Units Code Sequence
	d.SetSequence(tag(0x0040, 0xA043))       // Concept Name Code Sequence (type 2)
	d.SetString(tag(0x0042, 0x0010), "ST", "")
	d.Set(&header.Element{Tag: tag(0x0042, 0x0011), VR: "OB", Value: stl})
	d.SetString(tag(0x0042, 0x0012), "LO", "model/stl")
	d.SetUint32(tag(0x0042, 0x0015), uint32(len(stl)))
	_ = opt
	return d
}

// checkSTL accepts a binary STL whose size matches its triangle count, or
// an ASCII STL (solid … facet … endsolid).
func checkSTL(b []byte) error {
	if len(b) >= 84 {
		n := int64(binary.LittleEndian.Uint32(b[80:84]))
		if 84+50*n == int64(len(b)) {
			return nil
		}
	}
	s := strings.TrimSpace(string(b[:min(len(b), 1<<20)]))
	if strings.HasPrefix(s, "solid") && strings.Contains(string(b), "endsolid") {
		return nil
	}
	return fmt.Errorf("%w: stl: neither a binary STL of the right size nor ASCII STL", ErrInvalid)
}
