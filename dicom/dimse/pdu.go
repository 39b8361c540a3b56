package dimse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/molar-health/molar/dicom/uid"
)

// PDU types (PS3.8 9.3).
const (
	TypeAssociateRQ byte = 0x01
	TypeAssociateAC byte = 0x02
	TypeAssociateRJ byte = 0x03
	TypePDataTF     byte = 0x04
	TypeReleaseRQ   byte = 0x05
	TypeReleaseRP   byte = 0x06
	TypeAbort       byte = 0x07
)

// Item types of A-ASSOCIATE-RQ/AC variable fields and user information sub-items.
const (
	itemApplicationContext    byte = 0x10
	itemPresentationContextRQ byte = 0x20
	itemPresentationContextAC byte = 0x21
	itemAbstractSyntax        byte = 0x30
	itemTransferSyntax        byte = 0x40
	itemUserInformation       byte = 0x50
	subMaxLength              byte = 0x51
	subImplementationClassUID byte = 0x52
	subAsyncOps               byte = 0x53
	subRoleSelection          byte = 0x54
	subImplementationVersion  byte = 0x55
	subExtendedNegotiation    byte = 0x56
	subCommonExtended         byte = 0x57
	subUserIdentityRQ         byte = 0x58
	subUserIdentityAC         byte = 0x59
)

// Presentation context results (PS3.8 9.3.3.2).
const (
	ResultAcceptance                 byte = 0
	ResultUserRejection              byte = 1
	ResultProviderRejection          byte = 2 // no reason given
	ResultAbstractSyntaxNotSupported byte = 3
	ResultTransferSyntaxNotSupported byte = 4
)

// A-ASSOCIATE-RJ result, source and reason values (PS3.8 9.3.4).
const (
	RejectPermanent byte = 1
	RejectTransient byte = 2

	RejectSourceServiceUser            byte = 1
	RejectSourceServiceProviderACSE    byte = 2
	RejectSourceServiceProviderPresent byte = 3
	RejectReasonNoReason               byte = 1 // source 1 or 2
	RejectReasonAppContextNotSupported byte = 2 // source 1
	RejectReasonCallingAENotRecognized byte = 3 // source 1
	RejectReasonCalledAENotRecognized  byte = 7 // source 1
	RejectReasonProtocolVersion        byte = 2 // source 2
	RejectReasonTemporaryCongestion    byte = 1 // source 3
	RejectReasonLocalLimitExceeded     byte = 2 // source 3
)

// A-ABORT sources and reasons (PS3.8 9.3.8).
const (
	AbortSourceServiceUser     byte = 0
	AbortSourceServiceProvider byte = 2

	AbortReasonNotSpecified          byte = 0
	AbortReasonUnrecognizedPDU       byte = 1
	AbortReasonUnexpectedPDU         byte = 2
	AbortReasonUnrecognizedParameter byte = 4
	AbortReasonUnexpectedParameter   byte = 5
	AbortReasonInvalidParameter      byte = 6
)

// User identity types (PS3.7 D.3.3.7).
const (
	IdentityUsername         byte = 1
	IdentityUsernamePasscode byte = 2
	IdentityKerberos         byte = 3
	IdentitySAML             byte = 4
	IdentityJWT              byte = 5
)

// Limits applied while decoding.
const (
	// MaxAssociatePDULength caps A-ASSOCIATE and other non-data PDUs.
	MaxAssociatePDULength = 256 << 10
	// MinMaxPDULength is the smallest maximum PDU length we send to: a
	// peer announcing less (other than 0, unlimited) is refused during
	// negotiation (A-ASSOCIATE-RJ as acceptor, A-ABORT as requestor).
	MinMaxPDULength = 512
)

// ErrPDU marks malformed, unrecognized or oversized PDUs.
var ErrPDU = errors.New("dimse: invalid PDU")

// PDU is one of the protocol data units below.
type PDU interface{ Type() byte }

// AssociateRQ is an A-ASSOCIATE-RQ.
type AssociateRQ struct {
	ProtocolVersion      uint16
	CalledAE, CallingAE  string
	ApplicationContext   string
	PresentationContexts []PresentationContextRQ
	UserInfo             UserInfo
}

// AssociateAC is an A-ASSOCIATE-AC.
type AssociateAC struct {
	ProtocolVersion      uint16
	CalledAE, CallingAE  string // echoed from the request (not to be tested, PS3.8)
	ApplicationContext   string
	PresentationContexts []PresentationContextAC
	UserInfo             UserInfo
}

// AssociateRJ is an A-ASSOCIATE-RJ.
type AssociateRJ struct{ Result, Source, Reason byte }

// PDataTF is a P-DATA-TF with its presentation data values.
type PDataTF struct{ PDVs []PDV }

// PDV is one presentation data value.
type PDV struct {
	ContextID byte
	Command   bool // message control header bit 0
	Last      bool // message control header bit 1
	Data      []byte
}

// ReleaseRQ is an A-RELEASE-RQ.
type ReleaseRQ struct{}

// ReleaseRP is an A-RELEASE-RP.
type ReleaseRP struct{}

// Abort is an A-ABORT (or the A-P-ABORT a provider sends).
type Abort struct{ Source, Reason byte }

func (*AssociateRQ) Type() byte { return TypeAssociateRQ }
func (*AssociateAC) Type() byte { return TypeAssociateAC }
func (*AssociateRJ) Type() byte { return TypeAssociateRJ }
func (*PDataTF) Type() byte     { return TypePDataTF }
func (*ReleaseRQ) Type() byte   { return TypeReleaseRQ }
func (*ReleaseRP) Type() byte   { return TypeReleaseRP }
func (*Abort) Type() byte       { return TypeAbort }

// PresentationContextRQ is a proposed presentation context.
type PresentationContextRQ struct {
	ID               byte
	AbstractSyntax   string
	TransferSyntaxes []string
}

// PresentationContextAC is the acceptor's answer for one context.
type PresentationContextAC struct {
	ID             byte
	Result         byte
	TransferSyntax string
}

// UserInfo holds the user information sub-items.
type UserInfo struct {
	MaxPDULength              uint32 // 0 = no limit
	ImplementationClassUID    string
	ImplementationVersionName string
	AsyncOps                  *AsyncOps
	RoleSelections            []RoleSelection
	ExtendedNegotiation       []ExtendedNegotiation
	UserIdentity              *UserIdentity // RQ only
	// UserIdentityResponse is the server response of an AC (sub-item 0x59);
	// non-nil means the sub-item is present.
	UserIdentityResponse []byte
	// Other holds sub-items we do not interpret (e.g. common extended
	// negotiation), passed through as raw bytes (type + value).
	Other []RawItem
}

// AsyncOps is the asynchronous operations window (0 = unlimited).
type AsyncOps struct{ MaxInvoked, MaxPerformed uint16 }

// RoleSelection is an SCP/SCU role selection sub-item.
type RoleSelection struct {
	SOPClassUID string
	SCU, SCP    bool
}

// ExtendedNegotiation is an SOP class extended negotiation sub-item.
type ExtendedNegotiation struct {
	SOPClassUID string
	Info        []byte
}

// UserIdentity is a user identity negotiation request.
type UserIdentity struct {
	Type                      byte
	PositiveResponseRequested bool
	Primary                   []byte // username, Kerberos ticket, SAML assertion or JWT
	Secondary                 []byte // passcode for IdentityUsernamePasscode
}

// Kind is the identity's type for logs, 0 for none (the username itself
// stays out of logs; the association log keeps the account that signed in).
func (u *UserIdentity) Kind() int {
	if u == nil {
		return 0
	}
	return int(u.Type)
}

// Username returns the primary field for the username types.
func (u *UserIdentity) Username() string {
	if u == nil || (u.Type != IdentityUsername && u.Type != IdentityUsernamePasscode) {
		return ""
	}
	return string(u.Primary)
}

// RawItem is an uninterpreted sub-item.
type RawItem struct {
	Type  byte
	Value []byte
}

// ---- encoding ----

// EncodePDU encodes a PDU including its 6-byte header.
func EncodePDU(p PDU) ([]byte, error) {
	var body []byte
	var err error
	switch v := p.(type) {
	case *AssociateRQ:
		body, err = encodeAssociate(v.ProtocolVersion, v.CalledAE, v.CallingAE, v.ApplicationContext, func(b []byte) ([]byte, error) {
			for _, pc := range v.PresentationContexts {
				var sub []byte
				sub = appendItem(sub, itemAbstractSyntax, []byte(pc.AbstractSyntax))
				for _, ts := range pc.TransferSyntaxes {
					sub = appendItem(sub, itemTransferSyntax, []byte(ts))
				}
				val := append([]byte{pc.ID, 0, 0, 0}, sub...)
				if len(val) > 0xFFFF {
					return nil, fmt.Errorf("%w: presentation context %d too long", ErrPDU, pc.ID)
				}
				b = appendItem(b, itemPresentationContextRQ, val)
			}
			return b, nil
		}, &v.UserInfo, true)
	case *AssociateAC:
		body, err = encodeAssociate(v.ProtocolVersion, v.CalledAE, v.CallingAE, v.ApplicationContext, func(b []byte) ([]byte, error) {
			for _, pc := range v.PresentationContexts {
				var sub []byte
				ts := pc.TransferSyntax
				if pc.Result != ResultAcceptance && ts == "" {
					sub = appendItem(sub, itemTransferSyntax, nil)
				} else {
					sub = appendItem(sub, itemTransferSyntax, []byte(ts))
				}
				b = appendItem(b, itemPresentationContextAC, append([]byte{pc.ID, 0, pc.Result, 0}, sub...))
			}
			return b, nil
		}, &v.UserInfo, false)
	case *AssociateRJ:
		body = []byte{0, v.Result, v.Source, v.Reason}
	case *PDataTF:
		for _, pdv := range v.PDVs {
			body = binary.BigEndian.AppendUint32(body, uint32(len(pdv.Data)+2))
			body = append(body, pdv.ContextID, mch(pdv.Command, pdv.Last))
			body = append(body, pdv.Data...)
		}
	case *ReleaseRQ, *ReleaseRP:
		body = []byte{0, 0, 0, 0}
	case *Abort:
		body = []byte{0, 0, v.Source, v.Reason}
	default:
		return nil, fmt.Errorf("%w: unknown PDU %T", ErrPDU, p)
	}
	if err != nil {
		return nil, err
	}
	out := make([]byte, 6, 6+len(body))
	out[0] = p.Type()
	binary.BigEndian.PutUint32(out[2:], uint32(len(body)))
	return append(out, body...), nil
}

func mch(command, last bool) byte {
	var b byte
	if command {
		b |= 1
	}
	if last {
		b |= 2
	}
	return b
}

func appendItem(b []byte, typ byte, value []byte) []byte {
	b = append(b, typ, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(value)))
	return append(b, value...)
}

func aeField(s string) []byte {
	b := []byte("                ")
	copy(b, s)
	return b
}

func encodeAssociate(version uint16, called, calling, appCtx string, pcs func([]byte) ([]byte, error), ui *UserInfo, rq bool) ([]byte, error) {
	if version == 0 {
		version = 1
	}
	if appCtx == "" {
		appCtx = uid.ApplicationContext
	}
	b := binary.BigEndian.AppendUint16(nil, version)
	b = append(b, 0, 0)
	b = append(b, aeField(called)...)
	b = append(b, aeField(calling)...)
	b = append(b, make([]byte, 32)...)
	b = appendItem(b, itemApplicationContext, []byte(appCtx))
	b, err := pcs(b)
	if err != nil {
		return nil, err
	}
	u, err := encodeUserInfo(ui, rq)
	if err != nil {
		return nil, err
	}
	return appendItem(b, itemUserInformation, u), nil
}

func encodeUserInfo(ui *UserInfo, rq bool) ([]byte, error) {
	var b []byte
	b = appendItem(b, subMaxLength, binary.BigEndian.AppendUint32(nil, ui.MaxPDULength))
	if ui.ImplementationClassUID != "" {
		b = appendItem(b, subImplementationClassUID, []byte(ui.ImplementationClassUID))
	}
	if ui.AsyncOps != nil {
		v := binary.BigEndian.AppendUint16(nil, ui.AsyncOps.MaxInvoked)
		b = appendItem(b, subAsyncOps, binary.BigEndian.AppendUint16(v, ui.AsyncOps.MaxPerformed))
	}
	for _, rs := range ui.RoleSelections {
		v := binary.BigEndian.AppendUint16(nil, uint16(len(rs.SOPClassUID)))
		v = append(v, rs.SOPClassUID...)
		v = append(v, boolByte(rs.SCU), boolByte(rs.SCP))
		b = appendItem(b, subRoleSelection, v)
	}
	if ui.ImplementationVersionName != "" {
		b = appendItem(b, subImplementationVersion, []byte(ui.ImplementationVersionName))
	}
	for _, en := range ui.ExtendedNegotiation {
		v := binary.BigEndian.AppendUint16(nil, uint16(len(en.SOPClassUID)))
		v = append(v, en.SOPClassUID...)
		b = appendItem(b, subExtendedNegotiation, append(v, en.Info...))
	}
	for _, o := range ui.Other {
		b = appendItem(b, o.Type, o.Value)
	}
	if rq && ui.UserIdentity != nil {
		id := ui.UserIdentity
		if len(id.Primary) > 0xFFFF || len(id.Secondary) > 0xFFFF {
			return nil, fmt.Errorf("%w: user identity too long", ErrPDU)
		}
		v := []byte{id.Type, boolByte(id.PositiveResponseRequested)}
		v = binary.BigEndian.AppendUint16(v, uint16(len(id.Primary)))
		v = append(v, id.Primary...)
		v = binary.BigEndian.AppendUint16(v, uint16(len(id.Secondary)))
		v = append(v, id.Secondary...)
		b = appendItem(b, subUserIdentityRQ, v)
	}
	if !rq && ui.UserIdentityResponse != nil {
		v := binary.BigEndian.AppendUint16(nil, uint16(len(ui.UserIdentityResponse)))
		b = appendItem(b, subUserIdentityAC, append(v, ui.UserIdentityResponse...))
	}
	if len(b) > 0xFFFF {
		return nil, fmt.Errorf("%w: user information too long", ErrPDU)
	}
	return b, nil
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// ---- decoding ----

// ReadPDU reads one complete PDU. Bodies longer than maxLength are refused
// before anything is allocated, and shorter ones are allocated as they
// arrive (0 = MaxAssociatePDULength for every type).
func ReadPDU(r io.Reader, maxLength uint32) (PDU, error) {
	var hdr [6]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	typ, length := hdr[0], binary.BigEndian.Uint32(hdr[2:])
	if maxLength == 0 {
		maxLength = MaxAssociatePDULength
	}
	if typ < TypeAssociateRQ || typ > TypeAbort {
		return nil, fmt.Errorf("%w: unrecognized PDU type 0x%02x", ErrPDU, typ)
	}
	if length > maxLength {
		return nil, fmt.Errorf("%w: PDU type 0x%02x length %d exceeds %d", ErrPDU, typ, length, maxLength)
	}
	body, err := readBody(r, length)
	if err != nil {
		return nil, fmt.Errorf("%w: truncated PDU: %w", ErrPDU, err)
	}
	return DecodePDU(typ, body)
}

// readBody reads a PDU body of n bytes, allocating as the bytes arrive
// (from 4 KiB, doubling, never beyond n) rather than n up front: a peer that
// announces a large A-ASSOCIATE-RQ and sends nothing more pins little
// memory. A short body is io.ErrUnexpectedEOF, as with io.ReadFull.
func readBody(r io.Reader, n uint32) ([]byte, error) {
	size := int(n)
	buf := make([]byte, 0, min(size, 4<<10))
	for len(buf) < size {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(2*cap(buf), size))
			copy(grown, buf)
			buf = grown
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil && len(buf) < size {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return buf, nil
}

// DecodePDU decodes a PDU body (the bytes after the 6-byte header).
func DecodePDU(typ byte, body []byte) (PDU, error) {
	switch typ {
	case TypeAssociateRQ:
		return decodeAssociateRQ(body)
	case TypeAssociateAC:
		return decodeAssociateAC(body)
	case TypeAssociateRJ:
		if len(body) != 4 {
			return nil, fmt.Errorf("%w: A-ASSOCIATE-RJ length %d", ErrPDU, len(body))
		}
		return &AssociateRJ{Result: body[1], Source: body[2], Reason: body[3]}, nil
	case TypePDataTF:
		p := &PDataTF{}
		for len(body) > 0 {
			if len(body) < 6 {
				return nil, fmt.Errorf("%w: truncated PDV header", ErrPDU)
			}
			n := binary.BigEndian.Uint32(body)
			if n < 2 || uint64(n) > uint64(len(body)-4) {
				return nil, fmt.Errorf("%w: PDV length %d", ErrPDU, n)
			}
			p.PDVs = append(p.PDVs, PDV{ContextID: body[4], Command: body[5]&1 != 0, Last: body[5]&2 != 0, Data: body[6 : 4+n]})
			body = body[4+n:]
		}
		if len(p.PDVs) == 0 {
			return nil, fmt.Errorf("%w: P-DATA-TF without PDV", ErrPDU)
		}
		return p, nil
	case TypeReleaseRQ, TypeReleaseRP:
		if len(body) != 4 {
			return nil, fmt.Errorf("%w: A-RELEASE length %d", ErrPDU, len(body))
		}
		if typ == TypeReleaseRQ {
			return &ReleaseRQ{}, nil
		}
		return &ReleaseRP{}, nil
	case TypeAbort:
		if len(body) != 4 {
			return nil, fmt.Errorf("%w: A-ABORT length %d", ErrPDU, len(body))
		}
		return &Abort{Source: body[2], Reason: body[3]}, nil
	}
	return nil, fmt.Errorf("%w: unrecognized PDU type 0x%02x", ErrPDU, typ)
}

type item struct {
	typ   byte
	value []byte
}

// splitItems splits a byte string into items (type, reserved, 2-byte length).
func splitItems(b []byte) ([]item, error) {
	var out []item
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, fmt.Errorf("%w: truncated item header", ErrPDU)
		}
		n := int(binary.BigEndian.Uint16(b[2:]))
		if 4+n > len(b) {
			return nil, fmt.Errorf("%w: item 0x%02x length %d overruns", ErrPDU, b[0], n)
		}
		out = append(out, item{b[0], b[4 : 4+n]})
		b = b[4+n:]
	}
	return out, nil
}

func trimAE(b []byte) string { return strings.TrimSpace(strings.TrimRight(string(b), "\x00")) }

func trimUID(b []byte) string { return strings.TrimRight(strings.TrimSpace(string(b)), "\x00") }

type assocFixed struct {
	version         uint16
	called, calling string
	items           []item
}

func decodeAssocFixed(body []byte) (*assocFixed, error) {
	if len(body) < 68 {
		return nil, fmt.Errorf("%w: A-ASSOCIATE too short (%d)", ErrPDU, len(body))
	}
	f := &assocFixed{
		version: binary.BigEndian.Uint16(body),
		called:  trimAE(body[4:20]),
		calling: trimAE(body[20:36]),
	}
	items, err := splitItems(body[68:])
	if err != nil {
		return nil, err
	}
	f.items = items
	return f, nil
}

func decodeAssociateRQ(body []byte) (*AssociateRQ, error) {
	f, err := decodeAssocFixed(body)
	if err != nil {
		return nil, err
	}
	rq := &AssociateRQ{ProtocolVersion: f.version, CalledAE: f.called, CallingAE: f.calling}
	for _, it := range f.items {
		switch it.typ {
		case itemApplicationContext:
			rq.ApplicationContext = trimUID(it.value)
		case itemPresentationContextRQ:
			if len(it.value) < 4 {
				return nil, fmt.Errorf("%w: presentation context item too short", ErrPDU)
			}
			pc := PresentationContextRQ{ID: it.value[0]}
			subs, err := splitItems(it.value[4:])
			if err != nil {
				return nil, err
			}
			for _, s := range subs {
				switch s.typ {
				case itemAbstractSyntax:
					pc.AbstractSyntax = trimUID(s.value)
				case itemTransferSyntax:
					pc.TransferSyntaxes = append(pc.TransferSyntaxes, trimUID(s.value))
				default:
					return nil, fmt.Errorf("%w: unexpected sub-item 0x%02x in presentation context", ErrPDU, s.typ)
				}
			}
			rq.PresentationContexts = append(rq.PresentationContexts, pc)
		case itemUserInformation:
			if err := decodeUserInfo(it.value, &rq.UserInfo); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%w: unexpected item 0x%02x in A-ASSOCIATE-RQ", ErrPDU, it.typ)
		}
	}
	return rq, nil
}

func decodeAssociateAC(body []byte) (*AssociateAC, error) {
	f, err := decodeAssocFixed(body)
	if err != nil {
		return nil, err
	}
	ac := &AssociateAC{ProtocolVersion: f.version, CalledAE: f.called, CallingAE: f.calling}
	for _, it := range f.items {
		switch it.typ {
		case itemApplicationContext:
			ac.ApplicationContext = trimUID(it.value)
		case itemPresentationContextAC:
			if len(it.value) < 4 {
				return nil, fmt.Errorf("%w: presentation context item too short", ErrPDU)
			}
			pc := PresentationContextAC{ID: it.value[0], Result: it.value[2]}
			subs, err := splitItems(it.value[4:])
			if err != nil {
				return nil, err
			}
			for _, s := range subs {
				if s.typ == itemTransferSyntax {
					pc.TransferSyntax = trimUID(s.value)
				}
			}
			ac.PresentationContexts = append(ac.PresentationContexts, pc)
		case itemUserInformation:
			if err := decodeUserInfo(it.value, &ac.UserInfo); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%w: unexpected item 0x%02x in A-ASSOCIATE-AC", ErrPDU, it.typ)
		}
	}
	return ac, nil
}

func decodeUserInfo(b []byte, ui *UserInfo) error {
	subs, err := splitItems(b)
	if err != nil {
		return err
	}
	for _, s := range subs {
		v := s.value
		switch s.typ {
		case subMaxLength:
			if len(v) != 4 {
				return fmt.Errorf("%w: maximum length sub-item size %d", ErrPDU, len(v))
			}
			ui.MaxPDULength = binary.BigEndian.Uint32(v)
		case subImplementationClassUID:
			ui.ImplementationClassUID = trimUID(v)
		case subImplementationVersion:
			ui.ImplementationVersionName = strings.TrimSpace(string(v))
		case subAsyncOps:
			if len(v) != 4 {
				return fmt.Errorf("%w: asynchronous operations sub-item size %d", ErrPDU, len(v))
			}
			ui.AsyncOps = &AsyncOps{MaxInvoked: binary.BigEndian.Uint16(v), MaxPerformed: binary.BigEndian.Uint16(v[2:])}
		case subRoleSelection:
			if len(v) < 2 {
				return fmt.Errorf("%w: role selection too short", ErrPDU)
			}
			n := int(binary.BigEndian.Uint16(v))
			if len(v) != 2+n+2 {
				return fmt.Errorf("%w: role selection size", ErrPDU)
			}
			ui.RoleSelections = append(ui.RoleSelections, RoleSelection{SOPClassUID: trimUID(v[2 : 2+n]), SCU: v[2+n] != 0, SCP: v[3+n] != 0})
		case subExtendedNegotiation:
			if len(v) < 2 {
				return fmt.Errorf("%w: extended negotiation too short", ErrPDU)
			}
			n := int(binary.BigEndian.Uint16(v))
			if len(v) < 2+n {
				return fmt.Errorf("%w: extended negotiation size", ErrPDU)
			}
			ui.ExtendedNegotiation = append(ui.ExtendedNegotiation, ExtendedNegotiation{SOPClassUID: trimUID(v[2 : 2+n]), Info: append([]byte(nil), v[2+n:]...)})
		case subUserIdentityRQ:
			if len(v) < 4 {
				return fmt.Errorf("%w: user identity too short", ErrPDU)
			}
			id := &UserIdentity{Type: v[0], PositiveResponseRequested: v[1] != 0}
			n := int(binary.BigEndian.Uint16(v[2:]))
			if len(v) < 4+n+2 {
				return fmt.Errorf("%w: user identity primary field overruns", ErrPDU)
			}
			id.Primary = append([]byte(nil), v[4:4+n]...)
			m := int(binary.BigEndian.Uint16(v[4+n:]))
			if len(v) != 6+n+m {
				return fmt.Errorf("%w: user identity secondary field size", ErrPDU)
			}
			id.Secondary = append([]byte(nil), v[6+n:]...)
			ui.UserIdentity = id
		case subUserIdentityAC:
			if len(v) < 2 {
				return fmt.Errorf("%w: user identity response too short", ErrPDU)
			}
			n := int(binary.BigEndian.Uint16(v))
			if len(v) != 2+n {
				return fmt.Errorf("%w: user identity response size", ErrPDU)
			}
			ui.UserIdentityResponse = append([]byte{}, v[2:]...)
		default:
			ui.Other = append(ui.Other, RawItem{Type: s.typ, Value: append([]byte(nil), v...)})
		}
	}
	return nil
}
