package dimse

import "fmt"

// Status is a DIMSE status code (0000,0900), PS3.7 Annex C and the service
// definitions of PS3.4.
type Status uint16

// Status codes. Where a range is defined (A7xx, A9xx, Cxxx) the constant is
// the usual representative.
const (
	StatusSuccess Status = 0x0000

	// Pending (C-FIND, C-MOVE, C-GET).
	StatusPending                    Status = 0xFF00
	StatusPendingOptionalKeysMissing Status = 0xFF01 // some optional keys not supported

	StatusCancel Status = 0xFE00 // terminated due to C-CANCEL

	// Warnings.
	StatusCoercionOfDataElements     Status = 0xB000 // C-STORE; also C-MOVE/C-GET "sub-operations complete, one or more failures"
	StatusSubOperationsWithFailures  Status = 0xB000
	StatusElementsDiscarded          Status = 0xB006
	StatusDataSetDoesNotMatchWarning Status = 0xB007
	StatusAttributeListWarning       Status = 0x0107
	StatusAttributeValueOutOfRange   Status = 0x0116

	// Failures (C-STORE and Query/Retrieve).
	StatusOutOfResources         Status = 0xA700
	StatusOutOfResourcesMatches  Status = 0xA701 // unable to calculate number of matches
	StatusOutOfResourcesSubOps   Status = 0xA702 // unable to perform sub-operations
	StatusMoveDestinationUnknown Status = 0xA801
	StatusDataSetDoesNotMatchSOP Status = 0xA900 // data set / identifier does not match SOP class
	StatusCannotUnderstand       Status = 0xC000 // Cxxx: unable to process
	StatusNoSuchAttribute        Status = 0x0105
	StatusInvalidAttributeValue  Status = 0x0106
	StatusProcessingFailure      Status = 0x0110
	StatusDuplicateSOPInstance   Status = 0x0111 // general status (N-CREATE); some archives use it for C-STORE
	StatusNoSuchSOPInstance      Status = 0x0112
	StatusNoSuchSOPClass         Status = 0x0118
	StatusClassInstanceConflict  Status = 0x0119
	StatusMissingAttribute       Status = 0x0120
	StatusMissingAttributeValue  Status = 0x0121
	StatusNoSuchAction           Status = 0x0123 // N-ACTION: action type not defined
	StatusSOPClassNotSupported   Status = 0x0122
	StatusNotAuthorized          Status = 0x0124
	StatusDuplicateInvocation    Status = 0x0210
	StatusUnrecognizedOperation  Status = 0x0211
	StatusMistypedArgument       Status = 0x0212
	StatusResourceLimitation     Status = 0x0213
)

// Kind classifies a status.
type Kind int

const (
	KindSuccess Kind = iota
	KindPending
	KindCancel
	KindWarning
	KindFailure
)

// Kind returns the category of the status code (PS3.7 C.1).
func (s Status) Kind() Kind {
	switch {
	case s == 0x0000:
		return KindSuccess
	case s == 0xFF00 || s == 0xFF01:
		return KindPending
	case s == 0xFE00:
		return KindCancel
	case s&0xF000 == 0xB000, s == 0x0001, s == 0x0107, s == 0x0116:
		return KindWarning
	}
	return KindFailure
}

// IsSuccess reports a success status.
func (s Status) IsSuccess() bool { return s == StatusSuccess }

// IsPending reports a pending status.
func (s Status) IsPending() bool { return s.Kind() == KindPending }

// IsFailure reports a failure status.
func (s Status) IsFailure() bool { return s.Kind() == KindFailure }

var statusNames = map[Status]string{
	0x0000: "Success",
	0xFF00: "Pending",
	0xFF01: "Pending (optional keys not supported)",
	0xFE00: "Cancel",
	0xB000: "Warning: coercion of data elements / sub-operations complete with failures",
	0xB006: "Warning: elements discarded",
	0xB007: "Warning: data set does not match SOP class",
	0x0107: "Warning: attribute list error",
	0x0116: "Warning: attribute value out of range",
	0xA700: "Refused: out of resources",
	0xA701: "Refused: out of resources (unable to calculate number of matches)",
	0xA702: "Refused: out of resources (unable to perform sub-operations)",
	0xA801: "Refused: move destination unknown",
	0xA900: "Error: data set does not match SOP class",
	0xC000: "Error: cannot understand",
	0x0105: "Failure: no such attribute",
	0x0106: "Failure: invalid attribute value",
	0x0110: "Failure: processing failure",
	0x0111: "Failure: duplicate SOP instance",
	0x0112: "Failure: no such SOP instance",
	0x0118: "Failure: no such SOP class",
	0x0119: "Failure: class-instance conflict",
	0x0120: "Failure: missing attribute",
	0x0121: "Failure: missing attribute value",
	0x0122: "Refused: SOP class not supported",
	0x0123: "Failure: no such action",
	0x0124: "Refused: not authorized",
	0x0210: "Failure: duplicate invocation",
	0x0211: "Failure: unrecognized operation",
	0x0212: "Failure: mistyped argument",
	0x0213: "Failure: resource limitation",
}

// String returns "0xA700 Refused: out of resources" style text.
func (s Status) String() string {
	name, ok := statusNames[s]
	if !ok {
		switch {
		case s&0xFF00 == 0xA700:
			name = "Refused: out of resources"
		case s&0xFF00 == 0xA900:
			name = "Error: data set does not match SOP class"
		case s&0xF000 == 0xC000:
			name = "Error: cannot understand"
		default:
			name = "Unknown status"
		}
	}
	return fmt.Sprintf("0x%04X %s", uint16(s), name)
}

// StatusError carries a DIMSE status and an error comment (0000,0902).
// Handlers return it to choose the failure status; clients return it for
// non-success final statuses.
type StatusError struct {
	Status  Status
	Comment string
	Err     error // optional cause (not sent to the peer)
}

func (e *StatusError) Error() string {
	msg := e.Status.String()
	if e.Comment != "" {
		msg += ": " + e.Comment
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *StatusError) Unwrap() error { return e.Err }

// Fail builds a *StatusError.
func Fail(status Status, comment string, cause error) *StatusError {
	return &StatusError{Status: status, Comment: comment, Err: cause}
}
