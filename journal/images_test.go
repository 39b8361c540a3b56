package journal_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/journal"
)

// ownedImages is an index that holds one study, of one person.
type ownedImages struct {
	journal.NoImages
	study  string
	person int64
}

func (o ownedImages) CheckImageOf(_ context.Context, _, personID int64, studyUID, _, _ string) error {
	if studyUID == o.study && personID != o.person {
		return fmt.Errorf("test index: study of another person: %w", journal.ErrNotFound)
	}
	return nil
}

// TestLinkImageOfAnotherPerson: the study UID of a link comes from the
// request; a study the index holds for another person is not linked (it
// would put that person's X-ray on this child's worklist and tooth view).
func TestLinkImageOfAnotherPerson(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const teenStudy = "1.2.826.0.1.3680043.2.77"
	e.svc.Images = ownedImages{study: teenStudy, person: e.teen}
	_, err := e.svc.LinkImage(ctx, e.dentistA, e.child, journal.ImageLink{StudyUID: teenStudy, Modality: "IO"})
	require.ErrorIs(t, err, journal.ErrNotFound)
	require.Zero(t, e.count(`SELECT count(*) FROM journal.image_link`))
	// The owner's link, and one of a study the index does not hold yet, are stored.
	_, err = e.svc.LinkImage(ctx, e.dentistA, e.teen, journal.ImageLink{StudyUID: teenStudy, Modality: "IO"})
	require.NoError(t, err)
	_, err = e.svc.LinkImage(ctx, e.dentistA, e.child, journal.ImageLink{StudyUID: "1.2.826.0.1.3680043.2.78", Modality: "IO"})
	require.NoError(t, err)
	require.Equal(t, 2, e.count(`SELECT count(*) FROM journal.image_link`))
}
