package dimse

import (
	"bytes"
	"context"
	"fmt"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/uid"
)

// Storage commitment attributes (PS3.3 C.14).
var (
	tagTransactionUID       = header.NewTag(0x0008, 0x1195)
	tagReferencedSOPSeq     = header.NewTag(0x0008, 0x1199)
	tagFailedSOPSeq         = header.NewTag(0x0008, 0x1198)
	tagFailureReason        = header.NewTag(0x0008, 0x1197)
	tagReferencedSOPClass   = header.NewTag(0x0008, 0x1150)
	tagReferencedSOPInst    = header.NewTag(0x0008, 0x1155)
	commitEventAllCommitted = uint16(1) // Storage Commitment Request Successful
	commitEventSomeFailed   = uint16(2) // Storage Commitment Request Complete - Failures Exist
)

// parseCommitRequest reads the N-ACTION data set of a commitment request.
func parseCommitRequest(data []byte, ts string) (*CommitRequest, error) {
	h, err := header.Read(bytes.NewReader(data), header.Options{TransferSyntax: ts})
	if err != nil {
		return nil, Fail(StatusInvalidAttributeValue, "storage commitment request unreadable", err)
	}
	req := &CommitRequest{TransactionUID: h.Dataset.UID(tagTransactionUID)}
	if req.TransactionUID == "" {
		return nil, Fail(StatusMissingAttribute, "no Transaction UID", nil)
	}
	for _, it := range h.Dataset.Sequence(tagReferencedSOPSeq) {
		r := SOPRef{SOPClassUID: it.UID(tagReferencedSOPClass), SOPInstanceUID: it.UID(tagReferencedSOPInst)}
		if r.SOPClassUID == "" || r.SOPInstanceUID == "" {
			return nil, Fail(StatusMissingAttribute, "a Referenced SOP Sequence item without its UIDs", nil)
		}
		req.Refs = append(req.Refs, r)
	}
	if len(req.Refs) == 0 {
		return nil, Fail(StatusMissingAttribute, "no Referenced SOP Sequence", nil)
	}
	return req, nil
}

func refItem(r SOPRef) *header.Dataset {
	it := header.NewDataset()
	it.SetString(tagReferencedSOPClass, "UI", r.SOPClassUID)
	it.SetString(tagReferencedSOPInst, "UI", r.SOPInstanceUID)
	return it
}

// commitDataSet builds the N-ACTION (request) or N-EVENT-REPORT (result)
// data set.
func commitDataSet(txUID string, committed []SOPRef, failed []CommitFailure) *header.Dataset {
	d := header.NewDataset()
	d.SetString(tagTransactionUID, "UI", txUID)
	if len(failed) > 0 {
		var items []*header.Dataset
		for _, f := range failed {
			it := refItem(f.SOPRef)
			it.SetUint16(tagFailureReason, uint16(f.Reason))
			items = append(items, it)
		}
		d.SetSequence(tagFailedSOPSeq, items...)
	}
	if len(committed) > 0 {
		var items []*header.Dataset
		for _, r := range committed {
			items = append(items, refItem(r))
		}
		d.SetSequence(tagReferencedSOPSeq, items...)
	}
	return d
}

// RequestCommitment asks the peer to commit to storing refs (N-ACTION-RQ of
// the Storage Commitment Push Model, which must have been proposed). The
// report comes later, as an N-EVENT-REPORT.
func (a *Association) RequestCommitment(ctx context.Context, txUID string, refs []SOPRef) (Status, error) {
	return a.sendCommitment(ctx, &Command{CommandField: NActionRQ, RequestedSOPClassUID: uid.StorageCommitmentPushModel,
		RequestedSOPInstanceUID: uid.StorageCommitmentPushModelInstance, ActionTypeID: 1}, commitDataSet(txUID, refs, nil))
}

// ReportCommitment sends a storage commitment report (N-EVENT-REPORT-RQ,
// event type 1 when every instance is committed, else 2) on an
// association that proposed the Storage Commitment Push Model with the
// SCP role (ProposedContext.ProposeSCPRole).
func (a *Association) ReportCommitment(ctx context.Context, res CommitResult) (Status, error) {
	ev := commitEventAllCommitted
	if len(res.Failed) > 0 {
		ev = commitEventSomeFailed
	}
	return a.sendCommitment(ctx, &Command{CommandField: NEventReportRQ, AffectedSOPClassUID: uid.StorageCommitmentPushModel,
		AffectedSOPInstanceUID: uid.StorageCommitmentPushModelInstance, EventTypeID: ev}, commitDataSet(res.TransactionUID, res.Committed, res.Failed))
}

func (a *Association) sendCommitment(ctx context.Context, cmd *Command, d *header.Dataset) (Status, error) {
	end, err := a.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer end()
	pc, err := a.FindContext(uid.StorageCommitmentPushModel, "")
	if err != nil {
		return 0, err
	}
	body, err := d.Encode(pc.TransferSyntax)
	if err != nil {
		return 0, fmt.Errorf("dimse: storage commitment data set: %w", err)
	}
	stop := a.watch(ctx)
	defer stop()
	cmd.MessageID = a.nextID()
	if err := a.c.sendMessage(pc.ID, cmd, bytes.NewReader(body)); err != nil {
		return 0, a.fail(err)
	}
	m, err := a.awaitResponse(ctx, cmd.MessageID, nil, nil)
	if err != nil {
		return 0, err
	}
	if m.data != nil {
		if err := m.data.drain(); err != nil {
			return 0, a.fail(err)
		}
	}
	return m.cmd.Status, nil
}

// ParseCommitResult reads an N-EVENT-REPORT data set of the Storage
// Commitment Push Model (for requestors and tests).
func ParseCommitResult(data []byte, ts string) (CommitResult, error) {
	h, err := header.Read(bytes.NewReader(data), header.Options{TransferSyntax: ts})
	if err != nil {
		return CommitResult{}, err
	}
	res := CommitResult{TransactionUID: h.Dataset.UID(tagTransactionUID)}
	for _, it := range h.Dataset.Sequence(tagReferencedSOPSeq) {
		res.Committed = append(res.Committed, SOPRef{it.UID(tagReferencedSOPClass), it.UID(tagReferencedSOPInst)})
	}
	for _, it := range h.Dataset.Sequence(tagFailedSOPSeq) {
		n, _ := it.Int(tagFailureReason)
		res.Failed = append(res.Failed, CommitFailure{SOPRef{it.UID(tagReferencedSOPClass), it.UID(tagReferencedSOPInst)}, Status(n)})
	}
	return res, nil
}
