package pixel

import (
	"context"
	"fmt"
)

// DefaultCodecs returns the process-wide decoder for JPEG-LS and JPEG 2000.
func DefaultCodecs() ExternalDecoder { return noCodecs{} }

type noCodecs struct{}

func (noCodecs) Decode(ctx context.Context, ts string, data []byte, want Info) (*Frame, error) {
	return nil, fmt.Errorf("%w: %s needs the codec worker", ErrUnsupported, ts)
}
