package pixel

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	stdjpeg "image/jpeg"

	"github.com/molar-health/molar/dicom/pixel/jpeg"
)

// decodeJPEG decodes a JPEG baseline, extended or lossless frame with the
// package's own decoder (progressive 8-bit JPEG falls back to image/jpeg).
func decodeJPEG(in Info, data []byte) (*Frame, error) {
	// Colour follows the header, as DCMTK does by default: YBR_* is
	// converted to RGB, RGB is left alone unless a JFIF marker declares
	// YCbCr (a common vendor error that would otherwise show false colours).
	color := jpeg.ColorRGB
	switch in.Photometric {
	case YBRFull, YBRFull422, YBRPartial, "YBR_PARTIAL_422":
		color = jpeg.ColorYCbCr
	case RGB:
		color = jpeg.ColorJFIF
	}
	img, err := jpeg.Decode(data, jpeg.Options{Width: in.Columns, Height: in.Rows, MaxSamples: in.FrameSamples(), Color: color})
	if errors.Is(err, jpeg.ErrUnsupported) && in.Container() == 8 {
		img2, err2 := decodeStdJPEG(in, data)
		switch {
		case err2 == nil:
			img, err = img2, nil
		case errors.Is(err2, ErrMalformed):
			return nil, err2
		}
	}
	switch {
	case errors.Is(err, jpeg.ErrUnsupported):
		return nil, fmt.Errorf("%w: %w", ErrUnsupported, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	case img.Components != in.SamplesPerPixel:
		return nil, fmt.Errorf("%w: JPEG has %d components, header says %d samples per pixel", ErrMalformed, img.Components, in.SamplesPerPixel)
	case img.Precision > in.Container():
		return nil, fmt.Errorf("%w: %d-bit JPEG in %d bits allocated", ErrMalformed, img.Precision, in.BitsAllocated)
	}
	f := newFrame(in, 0)
	switch {
	case f.Pix8 != nil:
		for i, v := range img.Pix {
			f.Pix8[i] = uint8(v)
		}
	case f.Pix16 != nil:
		copy(f.Pix16, img.Pix)
	default:
		for i, v := range img.Pix {
			f.Pix32[i] = uint32(v)
		}
	}
	if in.SamplesPerPixel == 3 {
		switch {
		case img.ColorConverted:
			f.Photometric = RGB
		case f.Photometric == YBRFull422 || f.Photometric == YBRPartial:
			f.Photometric = YBRFull
		}
	}
	f.normalise(codedShift(in, img.Precision))
	return f, nil
}

// decodeStdJPEG decodes what Go's image/jpeg handles (8-bit progressive).
// image/jpeg allocates the image the SOF marker describes: its size and
// components are checked against the header first (ErrMalformed).
func decodeStdJPEG(in Info, data []byte) (*jpeg.Image, error) {
	cfg, err := stdjpeg.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	comps := 3
	if cfg.ColorModel == color.GrayModel {
		comps = 1
	} else if cfg.ColorModel == color.CMYKModel {
		comps = 4
	}
	if cfg.Width != in.Columns || cfg.Height != in.Rows || comps != in.SamplesPerPixel {
		return nil, fmt.Errorf("%w: JPEG frame %d×%d×%d, header says %d×%d×%d", ErrMalformed, cfg.Width, cfg.Height, comps, in.Columns, in.Rows, in.SamplesPerPixel)
	}
	m, err := stdjpeg.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	b := m.Bounds()
	if b.Dx() != in.Columns || b.Dy() != in.Rows {
		return nil, fmt.Errorf("%w: size", ErrMalformed)
	}
	img := &jpeg.Image{Width: b.Dx(), Height: b.Dy(), Precision: 8, Process: 'P'}
	switch m := m.(type) {
	case *image.Gray:
		img.Components = 1
		img.Pix = make([]uint16, b.Dx()*b.Dy())
		for y := range b.Dy() {
			for x := range b.Dx() {
				img.Pix[y*b.Dx()+x] = uint16(m.GrayAt(b.Min.X+x, b.Min.Y+y).Y)
			}
		}
	default:
		img.Components = 3
		img.ColorConverted = true
		img.Pix = make([]uint16, 3*b.Dx()*b.Dy())
		for y := range b.Dy() {
			for x := range b.Dx() {
				c := color.RGBAModel.Convert(m.At(b.Min.X+x, b.Min.Y+y)).(color.RGBA)
				i := 3 * (y*b.Dx() + x)
				img.Pix[i], img.Pix[i+1], img.Pix[i+2] = uint16(c.R), uint16(c.G), uint16(c.B)
			}
		}
	}
	return img, nil
}
