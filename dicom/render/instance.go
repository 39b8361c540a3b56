package render

import (
	"context"
	"fmt"
	"image"
	"io"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/pixel"
)

// Instance is a stored instance opened for rendering: its header, its
// frames (decoded on demand) and its presentation pipeline.
type Instance struct {
	Header   *header.Header
	Frames   *pixel.Frames
	Pipeline *Pipeline
}

// Open reads the header of a Part-10 object (or bare data set) of size bytes
// from r and prepares frame-by-frame decoding; no pixel data is read yet.
func Open(r io.ReaderAt, size int64, opts pixel.Options) (*Instance, error) {
	h, err := header.Read(io.NewSectionReader(r, 0, size), header.Options{})
	if err != nil {
		return nil, fmt.Errorf("render: header: %w", err)
	}
	fr, err := pixel.Open(r, size, h, opts)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	p, err := FromDataset(h.Dataset)
	if err != nil {
		return nil, err
	}
	return &Instance{Header: h, Frames: fr, Pipeline: p}, nil
}

// Render decodes and renders one frame (0-based).
func (in *Instance) Render(ctx context.Context, frame int, o Options) (image.Image, *Window, error) {
	f, err := in.Frames.Frame(ctx, frame)
	if err != nil {
		return nil, nil, err
	}
	return Render(f, in.Pipeline, o)
}
