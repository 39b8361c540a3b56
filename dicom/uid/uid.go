// Package uid holds the DICOM UIDs Molar's protocol code needs: transfer
// syntaxes with their encoding properties, the verification, storage and
// query/retrieve SOP classes, and the default storage SOP class list the SCP
// accepts. Names follow PS3.6 Annex A.
package uid

// Application context and implementation identity.
const (
	// ApplicationContext is the DICOM Application Context Name (PS3.7 A.2.1).
	ApplicationContext = "1.2.840.10008.3.1.1.1"
)

// Transfer syntaxes.
const (
	ImplicitVRLittleEndian         = "1.2.840.10008.1.2"
	ExplicitVRLittleEndian         = "1.2.840.10008.1.2.1"
	DeflatedExplicitVRLittleEndian = "1.2.840.10008.1.2.1.99"
	ExplicitVRBigEndian            = "1.2.840.10008.1.2.2"
	JPEGBaseline8Bit               = "1.2.840.10008.1.2.4.50"
	JPEGExtended12Bit              = "1.2.840.10008.1.2.4.51"
	JPEGLossless                   = "1.2.840.10008.1.2.4.57"
	JPEGLosslessSV1                = "1.2.840.10008.1.2.4.70"
	JPEGLSLossless                 = "1.2.840.10008.1.2.4.80"
	JPEGLSNearLossless             = "1.2.840.10008.1.2.4.81"
	JPEG2000Lossless               = "1.2.840.10008.1.2.4.90"
	JPEG2000                       = "1.2.840.10008.1.2.4.91"
	RLELossless                    = "1.2.840.10008.1.2.5"
)

// Service SOP classes.
const (
	Verification = "1.2.840.10008.1.1"
	// StorageCommitmentPushModel and its well-known instance (PS3.4 J.3).
	StorageCommitmentPushModel         = "1.2.840.10008.1.20.1"
	StorageCommitmentPushModelInstance = "1.2.840.10008.1.20.1.1"

	PatientRootQueryRetrieveFind = "1.2.840.10008.5.1.4.1.2.1.1"
	PatientRootQueryRetrieveMove = "1.2.840.10008.5.1.4.1.2.1.2"
	PatientRootQueryRetrieveGet  = "1.2.840.10008.5.1.4.1.2.1.3"
	StudyRootQueryRetrieveFind   = "1.2.840.10008.5.1.4.1.2.2.1"
	StudyRootQueryRetrieveMove   = "1.2.840.10008.5.1.4.1.2.2.2"
	StudyRootQueryRetrieveGet    = "1.2.840.10008.5.1.4.1.2.2.3"
	ModalityWorklistFind         = "1.2.840.10008.5.1.4.31"
)

// Storage SOP classes used in dental imaging (DOMAIN.md "Dental DICOM").
const (
	DigitalIntraOralXRayForPresentation = "1.2.840.10008.5.1.4.1.1.1.3"
	DigitalIntraOralXRayForProcessing   = "1.2.840.10008.5.1.4.1.1.1.3.1"
	DigitalXRayForPresentation          = "1.2.840.10008.5.1.4.1.1.1.1"
	DigitalXRayForProcessing            = "1.2.840.10008.5.1.4.1.1.1.1.1"
	CTImage                             = "1.2.840.10008.5.1.4.1.1.2"
	EnhancedCTImage                     = "1.2.840.10008.5.1.4.1.1.2.1"
	XRay3DCraniofacialImage             = "1.2.840.10008.5.1.4.1.1.13.1.2"
	VLPhotographicImage                 = "1.2.840.10008.5.1.4.1.1.77.1.4"
	SecondaryCaptureImage               = "1.2.840.10008.5.1.4.1.1.7"
	ComputedRadiographyImage            = "1.2.840.10008.5.1.4.1.1.1"
	MRImage                             = "1.2.840.10008.5.1.4.1.1.4"
)

// TransferSyntax describes how a transfer syntax encodes a data set.
type TransferSyntax struct {
	UID          string
	Name         string
	ExplicitVR   bool
	BigEndian    bool
	Deflated     bool // the whole data set after the meta is deflated (RFC 1951)
	Encapsulated bool // pixel data is encapsulated (compressed fragments)
	Lossy        bool
}

var transferSyntaxes = []TransferSyntax{
	{UID: ImplicitVRLittleEndian, Name: "Implicit VR Little Endian"},
	{UID: ExplicitVRLittleEndian, Name: "Explicit VR Little Endian", ExplicitVR: true},
	{UID: DeflatedExplicitVRLittleEndian, Name: "Deflated Explicit VR Little Endian", ExplicitVR: true, Deflated: true},
	{UID: ExplicitVRBigEndian, Name: "Explicit VR Big Endian", ExplicitVR: true, BigEndian: true},
	{UID: JPEGBaseline8Bit, Name: "JPEG Baseline (Process 1)", ExplicitVR: true, Encapsulated: true, Lossy: true},
	{UID: JPEGExtended12Bit, Name: "JPEG Extended (Process 2 & 4)", ExplicitVR: true, Encapsulated: true, Lossy: true},
	{UID: JPEGLossless, Name: "JPEG Lossless, Non-Hierarchical (Process 14)", ExplicitVR: true, Encapsulated: true},
	{UID: JPEGLosslessSV1, Name: "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])", ExplicitVR: true, Encapsulated: true},
	{UID: JPEGLSLossless, Name: "JPEG-LS Lossless Image Compression", ExplicitVR: true, Encapsulated: true},
	{UID: JPEGLSNearLossless, Name: "JPEG-LS Lossy (Near-Lossless) Image Compression", ExplicitVR: true, Encapsulated: true, Lossy: true},
	{UID: JPEG2000Lossless, Name: "JPEG 2000 Image Compression (Lossless Only)", ExplicitVR: true, Encapsulated: true},
	{UID: JPEG2000, Name: "JPEG 2000 Image Compression", ExplicitVR: true, Encapsulated: true, Lossy: true},
	{UID: RLELossless, Name: "RLE Lossless", ExplicitVR: true, Encapsulated: true},
}

// LookupTransferSyntax returns the properties of a known transfer syntax.
// Unknown UIDs are reported with ok=false; PS3.5 requires every transfer
// syntax other than implicit VR LE and explicit VR BE to be explicit VR little
// endian, so callers may fall back to that for the data set encoding.
func LookupTransferSyntax(u string) (ts TransferSyntax, ok bool) {
	for _, t := range transferSyntaxes {
		if t.UID == u {
			return t, true
		}
	}
	return TransferSyntax{UID: u, Name: u, ExplicitVR: true, Encapsulated: true}, false
}

// DefaultTransferSyntaxes are the transfer syntaxes the SCP accepts by
// default for storage (DESIGN.md §3), in order of preference when the
// acceptor picks among several proposed for one presentation context.
func DefaultTransferSyntaxes() []string {
	out := make([]string, len(transferSyntaxes))
	for i, t := range transferSyntaxes {
		out[i] = t.UID
	}
	return out
}

// UncompressedTransferSyntaxes are the native (non-encapsulated) syntaxes.
func UncompressedTransferSyntaxes() []string {
	return []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian}
}

// Name returns the human readable name of a known UID, or the UID itself.
func Name(u string) string {
	if t, ok := LookupTransferSyntax(u); ok {
		return t.Name
	}
	for _, s := range storageClasses {
		if s.UID == u {
			return s.Name
		}
	}
	switch u {
	case Verification:
		return "Verification SOP Class"
	case PatientRootQueryRetrieveFind:
		return "Patient Root Query/Retrieve Information Model - FIND"
	case PatientRootQueryRetrieveMove:
		return "Patient Root Query/Retrieve Information Model - MOVE"
	case PatientRootQueryRetrieveGet:
		return "Patient Root Query/Retrieve Information Model - GET"
	case StudyRootQueryRetrieveFind:
		return "Study Root Query/Retrieve Information Model - FIND"
	case StudyRootQueryRetrieveMove:
		return "Study Root Query/Retrieve Information Model - MOVE"
	case StudyRootQueryRetrieveGet:
		return "Study Root Query/Retrieve Information Model - GET"
	case ModalityWorklistFind:
		return "Modality Worklist Information Model - FIND"
	case ApplicationContext:
		return "DICOM Application Context Name"
	}
	return u
}
