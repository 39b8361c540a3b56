package ingest

import (
	"context"
	"io"

	"github.com/molar-health/molar/dicom/dimse"
)

// TenantFunc says which tenant an association stores into (from the AE
// registry: scp.Caller in AssociationInfo.Value).
type TenantFunc func(ctx context.Context, a *dimse.AssociationInfo) (int64, error)

// StoreHandler is the C-STORE SCP: every data set goes through Ingest;
// Success only once durable, failures mapped by Status.
func (in *Ingester) StoreHandler(tenant TenantFunc) dimse.StoreHandler {
	return dimse.StoreFunc(func(ctx context.Context, req *dimse.StoreRequest, data io.Reader) (dimse.Status, error) {
		t, err := tenant(ctx, req.Assoc)
		if err != nil {
			st, comment := Status(err)
			return st, dimse.Fail(st, comment, err)
		}
		_, err = in.Ingest(ctx, Source{TenantID: t, AE: req.Assoc.CallingAE, SOPClassUID: req.SOPClassUID,
			SOPInstanceUID: req.SOPInstanceUID, TransferSyntax: req.TransferSyntax, Size: -1}, data)
		if err != nil {
			st, comment := Status(err)
			return st, dimse.Fail(st, comment, err)
		}
		return dimse.StatusSuccess, nil
	})
}
