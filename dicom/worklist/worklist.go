// Package worklist is the seam between scheduling and the DICOM Modality
// Worklist: the booking module schedules imaging appointments, and the MWL
// C-FIND SCP (dicom/dimse wiring) answers modalities with them. Neither side
// imports the other: cmd/molar hands a Source to the SCP.
package worklist

import (
	"context"
	"time"
)

// Item is one scheduled procedure step, as a modality sees it in
// Modality Worklist (PS3.4 K.6, Scheduled Procedure Step module).
type Item struct {
	TenantID int64
	// PersonID is the person (auth.person) the step is for, 0 if unknown:
	// a worklist answer is a read of their data, audited per person.
	PersonID int64
	// Patient.
	PatientID        string // what the modality writes into Patient ID: the CPR number (10 digits)
	PatientFamily    string
	PatientGiven     string
	PatientBirthDate time.Time
	PatientSex       string // M, F or O
	// Request.
	AccessionNumber               string // unique per imaging request, max 16 characters
	RequestedProcedureID          string
	RequestedProcedureDescription string
	StudyInstanceUID              string // assigned when booked, so the images land in one study
	ReferringPhysician            string
	// Scheduled procedure step.
	ScheduledStepID          string
	ScheduledStationAETitle  string
	ScheduledStationName     string
	ScheduledStart           time.Time // in Europe/Copenhagen when sent
	Modality                 string    // IO, PX, DX, CT, XC …
	ScheduledStepDescription string
	PerformingPhysician      string
	Location                 string // room or chair
}

// Query narrows the items a modality asks for. Zero fields match anything.
type Query struct {
	StationAETitle  string
	Modality        string
	From, To        time.Time // scheduled start within [From, To)
	PatientID       string
	AccessionNumber string
}

// Source lists scheduled items. Implementations return only steps that are
// still scheduled (not cancelled or done), across all tenants the SCP serves.
type Source interface {
	Items(ctx context.Context, q Query) ([]Item, error)
}
