package dimse

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/uid"
)

// subOpSender sends one instance as a C-STORE sub-operation.
type subOpSender interface {
	send(ctx context.Context, inst Instance) (Status, error)
	close()
}

// runRetrieve serves C-MOVE and C-GET: resolve, then C-STORE sub-operations
// with pending responses, C-CANCEL and the final counts.
func (a *serverAssoc) runRetrieve(ctx context.Context, op *runningOp, pc *PresentationContext, req *QueryRequest, rsp *Command) error {
	start := time.Now()
	isMove := req.Command == CMoveRQ
	name, svc := "C-GET", ServiceGet
	var handler RetrieveHandler = a.s.Get
	if isMove {
		name, svc, handler = "C-MOVE", ServiceMove, a.s.Move
	}
	final := func(st Status, comment string, counts *SubOpCounts, failed []string) error {
		f := *rsp
		f.Status, f.ErrorComment, f.SubOps = st, comment, counts
		a.hook(name, st, start, 0)
		op.finish()
		if len(failed) == 0 {
			return a.respond(pc, &f)
		}
		if fit := fitUIDList(failed); len(fit) < len(failed) {
			a.log.Info(name+": failed SOP instance UID list truncated to fit its 16-bit length", "failed", len(failed), "listed", len(fit))
			failed = fit
		}
		ds := header.NewDataset()
		ds.SetString(tagFailedSOPInstanceUIDList, "UI", failed...)
		b, err := ds.Encode(pc.TransferSyntax)
		if err != nil {
			return err
		}
		return a.c.sendMessage(pc.ID, &f, bytesReader(b))
	}
	if a.info.Services&svc == 0 {
		return final(StatusNotAuthorized, "", nil, nil)
	}
	var dest Destination
	if isMove {
		if req.MoveDestination == "" {
			return final(StatusMoveDestinationUnknown, "no move destination", nil, nil)
		}
		var err error
		dest, err = a.s.Move.Destination(ctx, req, req.MoveDestination)
		if err != nil && op.canceled.Load() {
			// The lookup failed because of the C-CANCEL, not the title.
			return final(StatusCancel, "", nil, nil)
		}
		if err != nil {
			st, comment := statusOf(StatusMoveDestinationUnknown, err)
			if !errors.As(err, new(*StatusError)) {
				st = StatusMoveDestinationUnknown
			}
			a.log.Info("C-MOVE destination refused", "destination", req.MoveDestination, "err", err)
			return final(st, comment, nil, nil)
		}
	}
	insts, err := func() (in []Instance, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("dimse: retrieve handler panic: %v", p)
			}
		}()
		return handler.Retrieve(ctx, req)
	}()
	if err != nil {
		st, comment := statusOf(StatusProcessingFailure, err)
		if op.canceled.Load() {
			st, comment = StatusCancel, ""
		}
		a.log.Warn(name+" failed", "status", st.String(), "err", err)
		return final(st, comment, nil, nil)
	}
	tally := subOpTally{remaining: len(insts)}
	if len(insts) == 0 {
		return final(StatusSuccess, "", tally.counts(false), nil)
	}
	var sender subOpSender
	if isMove {
		s, err := a.dialDestination(ctx, req, dest, insts)
		if err != nil && op.canceled.Load() {
			// The dial was interrupted by the C-CANCEL: nothing was attempted.
			return final(StatusCancel, "", tally.counts(true), nil)
		}
		if err != nil {
			a.log.Warn("C-MOVE cannot open association to destination", "destination", req.MoveDestination, "err", err)
			failedUIDs := make([]string, 0, len(insts))
			for _, in := range insts {
				failedUIDs = append(failedUIDs, in.SOPInstanceUID)
			}
			failed := subOpTally{failed: len(insts)}
			return final(StatusOutOfResourcesSubOps, "cannot associate with move destination", failed.counts(false), failedUIDs)
		}
		sender = s
	} else {
		sender = &getSender{a: a, req: req, transcode: a.s.Transcode}
	}
	defer sender.close()
	var failedUIDs []string
	for _, inst := range insts {
		if ctx.Err() != nil {
			break
		}
		subStart := time.Now()
		st, err := sender.send(ctx, inst)
		a.hook("C-STORE-SUBOP", st, subStart, 0)
		tally.remaining--
		switch {
		case err == nil && st.IsSuccess():
			tally.completed++
		case err == nil && st.Kind() == KindWarning:
			tally.warning++
		default:
			tally.failed++
			failedUIDs = append(failedUIDs, inst.SOPInstanceUID)
			a.log.Info(name+" sub-operation failed", "status", st.String(), "err", err)
		}
		if a.ctx.Err() != nil {
			return a.ctx.Err()
		}
		if tally.remaining > 0 && ctx.Err() == nil {
			pend := *rsp
			pend.Status, pend.SubOps = StatusPending, tally.counts(true)
			if err := a.respond(pc, &pend); err != nil {
				return err
			}
		}
	}
	if op.canceled.Load() || (ctx.Err() != nil && tally.remaining > 0) {
		return final(StatusCancel, "", tally.counts(true), failedUIDs)
	}
	st := StatusSuccess
	switch {
	case tally.failed == 0 && tally.warning == 0:
	case tally.completed == 0 && tally.warning == 0:
		st = StatusOutOfResourcesSubOps
	default:
		st = StatusSubOperationsWithFailures
	}
	a.log.Debug(name, "status", st.String(), "completed", tally.completed, "failed", tally.failed, "warning", tally.warning)
	return final(st, "", tally.counts(false), failedUIDs)
}

// fitUIDList returns the longest prefix of uids whose multi-valued UI value
// (backslash separated, padded to even length) fits the 16-bit value length
// of explicit VR encodings; a longer Failed SOP Instance UID List could not
// be encoded, and the final response would be lost.
func fitUIDList(uids []string) []string {
	n := 0
	for i, u := range uids {
		n += len(u)
		if i > 0 {
			n++ // separator
		}
		if n+n%2 > 0xFFFE {
			return uids[:i]
		}
	}
	return uids
}

// subOpTally counts sub-operations. The response fields are 16 bits: the
// counts are clamped to 0xFFFF when reported, never wrapped (a retrieve of
// more than 65535 instances reports 65535 remaining until fewer remain).
type subOpTally struct{ remaining, completed, failed, warning int }

func clamp16(n int) uint16 { return uint16(min(max(n, 0), 0xFFFF)) }

// counts returns the response fields, with Remaining for pending and
// cancel responses.
func (t subOpTally) counts(withRemaining bool) *SubOpCounts {
	c := &SubOpCounts{Completed: clamp16(t.completed), Failed: clamp16(t.failed), Warning: clamp16(t.warning)}
	if withRemaining {
		c.Remaining, c.HasRemaining = clamp16(t.remaining), true
	}
	return c
}

// ---- C-MOVE: a new association to the destination ----

type moveSender struct {
	a         *serverAssoc
	assoc     *Association
	req       *QueryRequest
	transcode Transcoder
}

func (a *serverAssoc) dialDestination(ctx context.Context, req *QueryRequest, dest Destination, insts []Instance) (*moveSender, error) {
	calling := a.s.SubOpAETitle
	if calling == "" {
		calling = a.s.AETitle
	}
	if calling == "" {
		calling = a.info.CalledAE
	}
	called := dest.AE
	if called == "" {
		called = req.MoveDestination
	}
	opts := DialOptions{CallingAE: calling, CalledAE: called, Contexts: subOpContexts(insts, a.s.Transcode != nil),
		TLS: dest.TLS, Logger: a.s.logger().With("parent_assoc", a.info.ID)}
	dial := dest.Dial
	if dial == nil {
		dial = Dial
	}
	assoc, err := dial(ctx, dest.Addr, opts)
	if err != nil {
		return nil, err
	}
	return &moveSender{a: a, assoc: assoc, req: req, transcode: a.s.Transcode}, nil
}

// subOpContexts proposes, per SOP class, each stored transfer syntax as it
// is and, when instances can be converted, one context with the
// uncompressed syntaxes: a receiver that takes none of the stored syntaxes
// (e.g. only Implicit VR Little Endian) then gets converted instances rather
// than failed sub-operations. At most 128 contexts.
func subOpContexts(insts []Instance, canTranscode bool) []ProposedContext {
	type key struct{ class, ts string }
	const anyUncompressed = "*"
	seen := map[key]bool{}
	var out []ProposedContext
	add := func(k key, ts []string) {
		if seen[k] || len(out) >= 128 {
			return
		}
		seen[k] = true
		out = append(out, ProposedContext{AbstractSyntax: k.class, TransferSyntaxes: ts})
	}
	for _, in := range insts {
		add(key{in.SOPClassUID, in.TransferSyntax}, []string{in.TransferSyntax})
		if canTranscode {
			add(key{in.SOPClassUID, anyUncompressed}, uid.UncompressedTransferSyntaxes())
		}
	}
	return out
}

func acceptedSyntaxes(contexts []PresentationContext, class string, needSCP bool) []string {
	var out []string
	for _, pc := range contexts {
		if pc.Accepted() && pc.AbstractSyntax == class && (!needSCP || pc.RequestorSCP) {
			out = append(out, pc.TransferSyntax)
		}
	}
	return out
}

func (m *moveSender) send(ctx context.Context, inst Instance) (Status, error) {
	accepted := acceptedSyntaxes(m.assoc.Contexts(), inst.SOPClassUID, false)
	inst, err := fitSyntax(ctx, inst, accepted, m.transcode)
	if err != nil {
		return StatusSOPClassNotSupported, err
	}
	rc, err := inst.Open(ctx)
	if err != nil {
		return StatusProcessingFailure, fmt.Errorf("dimse: open instance: %w", err)
	}
	defer rc.Close()
	return m.assoc.Store(ctx, StoreParams{SOPClassUID: inst.SOPClassUID, SOPInstanceUID: inst.SOPInstanceUID, TransferSyntax: inst.TransferSyntax,
		MoveOriginatorAE: m.req.Assoc.CallingAE, MoveOriginatorMessageID: m.req.MessageID}, rc)
}

func (m *moveSender) close() { _ = m.assoc.Close() }

// fitSyntax returns inst if its syntax is accepted, else a transcoded one.
func fitSyntax(ctx context.Context, inst Instance, accepted []string, transcode Transcoder) (Instance, error) {
	if len(accepted) == 0 {
		return inst, fmt.Errorf("%w: receiver does not accept %s", ErrNoPresentationContext, uid.Name(inst.SOPClassUID))
	}
	if slices.Contains(accepted, inst.TransferSyntax) {
		return inst, nil
	}
	if transcode == nil {
		return inst, fmt.Errorf("%w: receiver does not accept %s and no transcoder is configured", ErrNoPresentationContext, uid.Name(inst.TransferSyntax))
	}
	out, err := transcode(ctx, inst, accepted)
	if err != nil {
		return inst, fmt.Errorf("dimse: transcode to %v: %w", accepted, err)
	}
	return out, nil
}

// ---- C-GET: C-STORE on the same association ----

type getSender struct {
	a         *serverAssoc
	req       *QueryRequest
	transcode Transcoder
}

func (g *getSender) close() {}

func (g *getSender) send(ctx context.Context, inst Instance) (Status, error) {
	a := g.a
	var all []PresentationContext
	for _, pc := range a.c.contexts {
		all = append(all, *pc)
	}
	accepted := acceptedSyntaxes(all, inst.SOPClassUID, true)
	inst, err := fitSyntax(ctx, inst, accepted, g.transcode)
	if err != nil {
		return StatusSOPClassNotSupported, err
	}
	var pc *PresentationContext
	for _, p := range a.c.contexts {
		if p.Accepted() && p.RequestorSCP && p.AbstractSyntax == inst.SOPClassUID && p.TransferSyntax == inst.TransferSyntax {
			pc = p
			break
		}
	}
	if pc == nil {
		return StatusSOPClassNotSupported, ErrNoPresentationContext
	}
	rc, err := inst.Open(ctx)
	if err != nil {
		return StatusProcessingFailure, fmt.Errorf("dimse: open instance: %w", err)
	}
	defer rc.Close()
	id := uint16(a.msgID.Add(1))
	if id == 0 {
		id = uint16(a.msgID.Add(1))
	}
	ch := make(chan *Command, 1)
	a.mu.Lock()
	a.waiters[id] = ch
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.waiters, id)
		a.mu.Unlock()
	}()
	cmd := &Command{CommandField: CStoreRQ, MessageID: id, AffectedSOPClassUID: inst.SOPClassUID, AffectedSOPInstanceUID: inst.SOPInstanceUID, Priority: g.req.Priority}
	if err := a.c.sendMessage(pc.ID, cmd, rc); err != nil {
		a.c.abort(AbortSourceServiceProvider, AbortReasonNotSpecified)
		return StatusProcessingFailure, err
	}
	// Wait for the response even after C-CANCEL: it is in flight. The idle
	// timeout is suspended while the C-GET runs, so it bounds this wait
	// instead: a requestor that never answers must not hold the association.
	var expired <-chan time.Time
	if idle := a.c.idle; idle > 0 {
		t := time.NewTimer(idle)
		defer t.Stop()
		expired = t.C
	}
	select {
	case r := <-ch:
		return r.Status, nil
	case <-a.ctx.Done():
		return StatusProcessingFailure, a.ctx.Err()
	case <-expired:
		a.log.Info("no C-STORE-RSP to a C-GET sub-operation within the idle timeout, aborting")
		a.closeReason.CompareAndSwap(nil, ptr("idle-timeout"))
		a.c.abort(AbortSourceServiceProvider, AbortReasonNotSpecified)
		return StatusProcessingFailure, fmt.Errorf("dimse: no C-STORE-RSP within %v", a.c.idle)
	}
}
