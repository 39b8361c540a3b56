package dimse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Command field values (PS3.7 E.1).
const (
	CStoreRQ  uint16 = 0x0001
	CStoreRSP uint16 = 0x8001
	CGetRQ    uint16 = 0x0010
	CGetRSP   uint16 = 0x8010
	CFindRQ   uint16 = 0x0020
	CFindRSP  uint16 = 0x8020
	CMoveRQ   uint16 = 0x0021
	CMoveRSP  uint16 = 0x8021
	CEchoRQ   uint16 = 0x0030
	CEchoRSP  uint16 = 0x8030
	CCancelRQ uint16 = 0x0FFF

	NEventReportRQ  uint16 = 0x0100
	NEventReportRSP uint16 = 0x8100
	NActionRQ       uint16 = 0x0130
	NActionRSP      uint16 = 0x8130
)

// Priorities (0000,0700).
const (
	PriorityMedium uint16 = 0
	PriorityHigh   uint16 = 1
	PriorityLow    uint16 = 2
)

// Command data set type values (0000,0800).
const (
	DataSetPresent uint16 = 0x0001
	DataSetNull    uint16 = 0x0101
)

// MaxCommandLength caps a command set while it is reassembled.
const MaxCommandLength = 64 << 10

// ErrCommand marks a command set that cannot be decoded.
var ErrCommand = errors.New("dimse: invalid command set")

// Command is a DIMSE command set (group 0000), for every message type.
type Command struct {
	CommandField              uint16
	AffectedSOPClassUID       string // (0000,0002)
	RequestedSOPClassUID      string // (0000,0003)
	MessageID                 uint16 // (0000,0110)
	MessageIDBeingRespondedTo uint16 // (0000,0120)
	MoveDestination           string // (0000,0600)
	Priority                  uint16 // (0000,0700)
	HasDataSet                bool   // (0000,0800) != 0x0101
	Status                    Status // (0000,0900), responses only
	OffendingElements         []uint32
	ErrorComment              string // (0000,0902)
	ErrorID                   uint16 // (0000,0903)
	AffectedSOPInstanceUID    string // (0000,1000)
	RequestedSOPInstanceUID   string // (0000,1001)
	EventTypeID               uint16 // (0000,1002), N-EVENT-REPORT
	ActionTypeID              uint16 // (0000,1008), N-ACTION
	SubOps                    *SubOpCounts
	MoveOriginatorAE          string // (0000,1030)
	MoveOriginatorMessageID   uint16 // (0000,1031)
}

// SubOpCounts are the C-MOVE / C-GET sub-operation counters (0000,1020-1023).
type SubOpCounts struct {
	Remaining, Completed, Failed, Warning uint16
	// HasRemaining includes (0000,1020); it is sent with pending and cancel
	// responses only.
	HasRemaining bool
}

// IsResponse reports whether the command field is a response.
func (c *Command) IsResponse() bool { return c.CommandField&0x8000 != 0 }

// Name returns the message name, e.g. "C-STORE-RQ".
func (c *Command) Name() string { return CommandName(c.CommandField) }

// CommandName names a command field value.
func CommandName(f uint16) string {
	base := map[uint16]string{0x0001: "C-STORE", 0x0010: "C-GET", 0x0020: "C-FIND", 0x0021: "C-MOVE", 0x0030: "C-ECHO",
		0x0100: "N-EVENT-REPORT", 0x0110: "N-GET", 0x0120: "N-SET", 0x0130: "N-ACTION", 0x0140: "N-CREATE", 0x0150: "N-DELETE"}
	if f == CCancelRQ {
		return "C-CANCEL-RQ"
	}
	n, ok := base[f&0x7FFF]
	if !ok {
		return fmt.Sprintf("0x%04X", f)
	}
	if f&0x8000 != 0 {
		return n + "-RSP"
	}
	return n + "-RQ"
}

// Encode encodes the command set in implicit VR little endian with the
// command group length first.
func (c *Command) Encode() []byte {
	b := make([]byte, 12, 256) // group length element filled in below
	str := func(tag uint16, s string, pad byte) {
		if s == "" {
			return
		}
		v := []byte(s)
		if len(v)%2 == 1 {
			v = append(v, pad)
		}
		b = appendCmdElement(b, tag, v)
	}
	u16 := func(tag uint16, v uint16) {
		b = appendCmdElement(b, tag, binary.LittleEndian.AppendUint16(nil, v))
	}
	if c.CommandField == CCancelRQ {
		// C-CANCEL-RQ carries only the id of the request to cancel.
		u16(0x0100, c.CommandField)
		u16(0x0120, c.MessageIDBeingRespondedTo)
		u16(0x0800, DataSetNull)
		return finishCommand(b)
	}
	str(0x0002, c.AffectedSOPClassUID, 0)
	str(0x0003, c.RequestedSOPClassUID, 0)
	u16(0x0100, c.CommandField)
	if c.IsResponse() {
		u16(0x0120, c.MessageIDBeingRespondedTo)
	} else {
		u16(0x0110, c.MessageID)
	}
	if c.CommandField == CMoveRQ {
		str(0x0600, c.MoveDestination, ' ')
	}
	switch c.CommandField { // priority belongs to the C- requests but C-ECHO (PS3.7 9.3)
	case CStoreRQ, CFindRQ, CMoveRQ, CGetRQ:
		u16(0x0700, c.Priority)
	}
	if c.HasDataSet {
		u16(0x0800, DataSetPresent)
	} else {
		u16(0x0800, DataSetNull)
	}
	if c.IsResponse() {
		u16(0x0900, uint16(c.Status))
		if len(c.OffendingElements) > 0 {
			var v []byte
			for _, t := range c.OffendingElements {
				v = binary.LittleEndian.AppendUint16(v, uint16(t>>16))
				v = binary.LittleEndian.AppendUint16(v, uint16(t))
			}
			b = appendCmdElement(b, 0x0901, v)
		}
		if c.ErrorComment != "" {
			cm := c.ErrorComment
			if len(cm) > 64 {
				cm = cm[:64]
			}
			str(0x0902, cm, ' ')
		}
		if c.ErrorID != 0 {
			u16(0x0903, c.ErrorID)
		}
	}
	str(0x1000, c.AffectedSOPInstanceUID, 0)
	str(0x1001, c.RequestedSOPInstanceUID, 0)
	if c.CommandField&0x7FFF == NEventReportRQ && c.EventTypeID != 0 {
		u16(0x1002, c.EventTypeID)
	}
	if c.CommandField&0x7FFF == NActionRQ && c.ActionTypeID != 0 {
		u16(0x1008, c.ActionTypeID)
	}
	if s := c.SubOps; s != nil {
		if s.HasRemaining {
			u16(0x1020, s.Remaining)
		}
		u16(0x1021, s.Completed)
		u16(0x1022, s.Failed)
		u16(0x1023, s.Warning)
	}
	str(0x1030, c.MoveOriginatorAE, ' ')
	if c.MoveOriginatorMessageID != 0 || c.MoveOriginatorAE != "" {
		u16(0x1031, c.MoveOriginatorMessageID)
	}
	return finishCommand(b)
}

// finishCommand fills in (0000,0000) UL, the group length: the bytes after it.
func finishCommand(b []byte) []byte {
	binary.LittleEndian.PutUint32(b[0:], 0)
	binary.LittleEndian.PutUint32(b[4:], 4)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(b)-12))
	return b
}

func appendCmdElement(b []byte, elem uint16, v []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, 0x0000)
	b = binary.LittleEndian.AppendUint16(b, elem)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// DecodeCommand decodes an implicit VR little endian command set. Unknown
// group 0000 elements are ignored; elements of other groups are an error.
func DecodeCommand(b []byte) (*Command, error) {
	if len(b) > MaxCommandLength {
		return nil, fmt.Errorf("%w: %d bytes", ErrCommand, len(b))
	}
	c := &Command{}
	seenField := false
	dsType := DataSetNull
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, fmt.Errorf("%w: truncated element", ErrCommand)
		}
		group, elem := binary.LittleEndian.Uint16(b), binary.LittleEndian.Uint16(b[2:])
		n := binary.LittleEndian.Uint32(b[4:])
		if uint64(n) > uint64(len(b)-8) {
			return nil, fmt.Errorf("%w: element (%04X,%04X) length %d overruns", ErrCommand, group, elem, n)
		}
		v := b[8 : 8+n]
		b = b[8+n:]
		if group != 0x0000 {
			return nil, fmt.Errorf("%w: element (%04X,%04X) outside group 0000", ErrCommand, group, elem)
		}
		u16 := func() (uint16, error) {
			if len(v) != 2 {
				return 0, fmt.Errorf("%w: (0000,%04X) has length %d, want 2", ErrCommand, elem, len(v))
			}
			return binary.LittleEndian.Uint16(v), nil
		}
		var err error
		switch elem {
		case 0x0002:
			c.AffectedSOPClassUID = trimUID(v)
		case 0x0003:
			c.RequestedSOPClassUID = trimUID(v)
		case 0x0100:
			c.CommandField, err = u16()
			seenField = true
		case 0x0110:
			c.MessageID, err = u16()
		case 0x0120:
			c.MessageIDBeingRespondedTo, err = u16()
		case 0x0600:
			c.MoveDestination = strings.TrimSpace(string(v))
		case 0x0700:
			c.Priority, err = u16()
		case 0x0800:
			dsType, err = u16()
		case 0x0900:
			var s uint16
			s, err = u16()
			c.Status = Status(s)
		case 0x0901:
			for i := 0; i+4 <= len(v); i += 4 {
				c.OffendingElements = append(c.OffendingElements, uint32(binary.LittleEndian.Uint16(v[i:]))<<16|uint32(binary.LittleEndian.Uint16(v[i+2:])))
			}
		case 0x0902:
			c.ErrorComment = strings.TrimSpace(string(v))
		case 0x0903:
			c.ErrorID, err = u16()
		case 0x1000:
			c.AffectedSOPInstanceUID = trimUID(v)
		case 0x1001:
			c.RequestedSOPInstanceUID = trimUID(v)
		case 0x1002:
			c.EventTypeID, err = u16()
		case 0x1008:
			c.ActionTypeID, err = u16()
		case 0x1020, 0x1021, 0x1022, 0x1023:
			var n uint16
			n, err = u16()
			if c.SubOps == nil {
				c.SubOps = &SubOpCounts{}
			}
			switch elem {
			case 0x1020:
				c.SubOps.Remaining, c.SubOps.HasRemaining = n, true
			case 0x1021:
				c.SubOps.Completed = n
			case 0x1022:
				c.SubOps.Failed = n
			case 0x1023:
				c.SubOps.Warning = n
			}
		case 0x1030:
			c.MoveOriginatorAE = strings.TrimSpace(string(v))
		case 0x1031:
			c.MoveOriginatorMessageID, err = u16()
		}
		if err != nil {
			return nil, err
		}
	}
	if !seenField {
		return nil, fmt.Errorf("%w: no command field", ErrCommand)
	}
	c.HasDataSet = dsType != DataSetNull
	return c, nil
}
