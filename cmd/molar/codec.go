package main

import (
	"context"
	"fmt"
	"io"

	"github.com/molar-health/molar/dicom/pixel/codec"
)

// cmdCodec is the hidden `molar codec` command: a JPEG-LS / JPEG 2000
// decoding worker speaking the dicom/pixel/codec pipe protocol on stdin and
// stdout. The server starts it itself (with MOLAR_CODEC_WORKER=1, which the
// codec package's init catches before main); running it by hand is for
// debugging.
func cmdCodec(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("codec takes no arguments (it reads requests on stdin)")}
	}
	if code := codec.Main(); code != 0 {
		return fmt.Errorf("codec worker failed")
	}
	return nil
}
