package journal

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
)

// Image is a DICOM image of a person as the DICOM index knows it.
type Image struct {
	StudyUID     string    `json:"study_uid"`
	SeriesUID    string    `json:"series_uid,omitempty"`
	InstanceUID  string    `json:"instance_uid,omitempty"`
	Modality     string    `json:"modality,omitempty"`
	Teeth        []Tooth   `json:"teeth,omitempty"`
	Taken        time.Time `json:"taken,omitzero"`
	ThumbnailURL string    `json:"thumbnail_url,omitempty"`
	ViewerURL    string    `json:"viewer_url,omitempty"`
}

// Images is what the journal needs from the DICOM index: a person's
// images, and those showing a tooth (from the Primary Anatomic Structure
// Sequence). cmd/molar adapts the index to it; the default is NoImages.
type Images interface {
	ImagesForPerson(ctx context.Context, tenantID, personID int64) ([]Image, error)
	ImagesForTooth(ctx context.Context, tenantID, personID int64, tooth Tooth) ([]Image, error)
}

// ImageChecker is an optional part of Images: the DICOM index's word on a
// link's UIDs before it is stored.
type ImageChecker interface {
	// CheckImageOf returns an error wrapping ErrNotFound when the index
	// holds the study, series or instance and it is not the person's
	// (another person's, or unmatched), or the series or instance is not
	// in the study. UIDs the index does not hold (yet) pass.
	CheckImageOf(ctx context.Context, tenantID, personID int64, studyUID, seriesUID, instanceUID string) error
}

// NoImages is the Images of a server without a DICOM index: none.
type NoImages struct{}

// ImagesForPerson implements Images.
func (NoImages) ImagesForPerson(context.Context, int64, int64) ([]Image, error) { return nil, nil }

// ImagesForTooth implements Images.
func (NoImages) ImagesForTooth(context.Context, int64, int64, Tooth) ([]Image, error) {
	return nil, nil
}

// ImageLink links a study (or one instance of it) to a person, optionally a
// tooth and an entry. X-ray links without a description entry for their
// study are on the clinic's worklist.
type ImageLink struct {
	ID          int64     `json:"id"`
	PersonID    int64     `json:"person_id"`
	StudyUID    string    `json:"study_uid"`
	SeriesUID   string    `json:"series_uid,omitempty"`
	InstanceUID string    `json:"instance_uid,omitempty"`
	Modality    string    `json:"modality,omitempty"`
	Tooth       Tooth     `json:"tooth,omitempty"`
	EntryID     int64     `json:"entry_id,omitempty"`
	LinkedAt    time.Time `json:"linked_at,omitzero"`
	// Described: a current X-ray description entry covers the study.
	Described bool `json:"described"`
}

// xrayModalities are the modalities that are X-rays (DOMAIN.md "Dental DICOM").
var xrayModalities = map[string]bool{"IO": true, "PX": true, "DX": true, "CT": true, "CR": true, "": true}

// LinkImage links an image to a person (journal.write).
func (s *Service) LinkImage(ctx context.Context, p *auth.Principal, personID int64, l ImageLink) (ImageLink, error) {
	if !validUID(l.StudyUID) || l.SeriesUID != "" && !validUID(l.SeriesUID) || l.InstanceUID != "" && !validUID(l.InstanceUID) {
		return ImageLink{}, inputErr("image.uid")
	}
	if l.Tooth != 0 && !l.Tooth.Valid() {
		return ImageLink{}, inputErr("tooth.invalid", int(l.Tooth))
	}
	if len(l.Modality) > 4 {
		return ImageLink{}, inputErr("image.uid")
	}
	err := s.access(ctx, p, auth.PermJournalWrite, personID, audit.ActionCreate, func(ctx context.Context, tx pgx.Tx) (string, map[string]any, error) {
		if l.EntryID != 0 {
			if _, err := loadEntry(ctx, tx, personID, l.EntryID); err != nil {
				return "", nil, err
			}
		}
		// The UIDs come from the request: a study of another person (or one
		// not yet reconciled) must not be tied to this person's journal.
		if c, ok := s.images().(ImageChecker); ok {
			if err := c.CheckImageOf(ctx, p.TenantID, personID, l.StudyUID, l.SeriesUID, l.InstanceUID); err != nil {
				return "", nil, err
			}
		}
		var tooth, entry any
		if l.Tooth != 0 {
			tooth = int(l.Tooth)
		}
		if l.EntryID != 0 {
			entry = l.EntryID
		}
		err := tx.QueryRow(ctx, `INSERT INTO journal.image_link (tenant_id, person_id, study_uid, series_uid, instance_uid, modality, tooth, entry_id, linked_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id, linked_at`,
			p.TenantID, personID, l.StudyUID, l.SeriesUID, l.InstanceUID, l.Modality, tooth, entry, p.UserID).Scan(&l.ID, &l.LinkedAt)
		if err != nil {
			return "", nil, dbErr("link image", err)
		}
		l.PersonID = personID
		return fmt.Sprintf("journal.image_link/%d", l.ID), map[string]any{"study_uid": l.StudyUID}, nil
	})
	return l, err
}

// loadLinks returns the persons' image links, newest first, with whether a
// current X-ray description covers each study.
func loadLinks(ctx context.Context, tx pgx.Tx, personIDs ...int64) ([]ImageLink, error) {
	rows, err := tx.Query(ctx, `SELECT l.id, l.person_id, l.study_uid, l.series_uid, l.instance_uid, l.modality, COALESCE(l.tooth, 0),
			COALESCE(l.entry_id, 0), l.linked_at,
			EXISTS (SELECT 1 FROM journal.entry e WHERE e.person_id = l.person_id AND e.kind = 'xray_description'
			        AND e.body -> 'xray' ->> 'study_uid' = l.study_uid
			        AND NOT EXISTS (SELECT 1 FROM journal.entry n WHERE n.supersedes = e.id))
		FROM journal.image_link l WHERE l.person_id = ANY($1) ORDER BY l.linked_at DESC, l.id DESC`, personIDs)
	if err != nil {
		return nil, dbErr("image links", err)
	}
	defer rows.Close()
	var out []ImageLink
	for rows.Next() {
		var l ImageLink
		if err := rows.Scan(&l.ID, &l.PersonID, &l.StudyUID, &l.SeriesUID, &l.InstanceUID, &l.Modality, &l.Tooth, &l.EntryID, &l.LinkedAt, &l.Described); err != nil {
			return nil, dbErr("image links", err)
		}
		out = append(out, l)
	}
	return out, dbErr("image links", rows.Err())
}
