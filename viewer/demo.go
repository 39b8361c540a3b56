package viewer

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/ingest"
	"github.com/molar-health/molar/storage/postgres"
)

// FMXTeeth are the teeth of the 18 images of a full-mouth series in
// acquisition order (as the built-in "fmx" template's slots): maxillary
// periapicals right to left, mandibular left to right, then the bitewings.
var FMXTeeth = [][]string{
	{"18", "17", "16"}, {"15", "14"}, {"13"}, {"12", "11", "21", "22"}, {"23"}, {"24", "25"}, {"26", "27", "28"},
	{"36", "37", "38"}, {"34", "35"}, {"33"}, {"42", "41", "31", "32"}, {"43"}, {"45", "44"}, {"48", "47", "46"},
	{"17", "16", "47", "46"}, {"15", "14", "45", "44"}, {"24", "25", "34", "35"}, {"26", "27", "36", "37"},
}

// MeasureSpacing is the Pixel Spacing (mm) of the demo's periapicals: the
// tests measure on them.
const MeasureSpacing = 0.05

// DemoStudies are the synthetic studies of the n-th demo child (relative
// to now): the first child has a full-mouth series, a later bitewing set, a
// panoramic without a window, a small CBCT and a photo; the second a
// bitewing set and a panoramic; the third a panoramic.
func DemoStudies(n int, now time.Time) []SynthStudy {
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	bw := SynthStudy{Key: "bw", Date: day.AddDate(0, -2, 0), Description: "Bitewings", Modality: "IO"}
	for i, t := range FMXTeeth[14:] {
		bw.Images = append(bw.Images, SynthImage{Kind: KindBitewing, Teeth: t, Rows: 480, Cols: 640, BitsStored: 16,
			Spacing: 0.04, Imager: true, Seed: uint64(100 + i), Number: i + 1, Filling: map[int]string{0: "46", 3: "26"}[i]})
	}
	pano := SynthStudy{Key: "pano", Date: day.AddDate(-2, 0, 0), Description: "Panoramaoptagelse", Modality: "PX",
		Images: []SynthImage{{Kind: KindPanoramic, Rows: 800, Cols: 1600, BitsStored: 12, Spacing: 0.1, Imager: true, NoWindow: true, Seed: 200, Number: 1}}}
	switch n {
	case 0:
		fmx := SynthStudy{Key: "fmx", Date: day.AddDate(-1, 0, 0), Description: "Fuld status", Modality: "IO"}
		for i, t := range FMXTeeth {
			im := SynthImage{Kind: KindIntraoral, Teeth: t, Rows: 640, Cols: 480, BitsStored: 12, Spacing: MeasureSpacing, Seed: uint64(i + 1), Number: i + 1}
			if i >= 14 {
				im.Kind, im.Rows, im.Cols = KindBitewing, 480, 640
			}
			if t[0] == "36" {
				im.Filling = "36"
			}
			fmx.Images = append(fmx.Images, im)
		}
		cbct := SynthStudy{Key: "cbct", Date: day.AddDate(0, -6, 0), Description: "CBCT underkæbe", Modality: "CT",
			Images: []SynthImage{{Kind: KindCBCT, Rows: 160, Cols: 160, Frames: 40, BitsStored: 16, Spacing: 0.25, Seed: 300, Number: 1}}}
		photo := SynthStudy{Key: "photo", Date: day, Description: "Intraoralt foto", Modality: "XC",
			Images: []SynthImage{{Kind: KindPhoto, Rows: 320, Cols: 480, Seed: 400, Number: 1}}}
		return []SynthStudy{fmx, bw, pano, cbct, photo}
	case 1:
		return []SynthStudy{bw, pano}
	case 2:
		return []SynthStudy{pano}
	}
	return nil
}

// fileCache keeps rendered demo files by patient and image, so that a
// process seeding the demo many times (tests) renders each once.
var fileCache sync.Map

// IngestFunc stores one Part-10 file through the one ingest path.
type IngestFunc func(ctx context.Context, src ingest.Source, file []byte) (ingest.Result, error)

// SeedDemo gives the first demo children synthetic images (DemoStudies),
// stored through ingest so they are indexed and reconciled like any other
// instance. Children who already have studies are left alone (the demo
// seeds at every start). The images carry the children's CPR numbers,
// names and birth dates, so they reconcile to them.
func SeedDemo(ctx context.Context, pool postgres.Beginner, tenantID int64, children []int64, store IngestFunc, now time.Time) error {
	for n, id := range children {
		studies := DemoStudies(n, now)
		if len(studies) == 0 {
			break
		}
		var p Patient
		var has bool
		err := postgres.InTenant(ctx, pool, tenantID, func(tx pgx.Tx) error {
			per, err := auth.GetPerson(ctx, tx, id)
			if err != nil {
				return err
			}
			st, err := index.StudiesOfPerson(ctx, tx, id)
			if err != nil {
				return err
			}
			has = len(st) > 0
			sex := map[string]string{auth.SexMale: "M", auth.SexFemale: "F"}[per.Sex]
			if sex == "" {
				sex = "O"
			}
			p = Patient{ID: per.CPR.Digits(), Family: per.FamilyName, Given: per.GivenName, BirthDate: per.BirthDate, Sex: sex,
				UIDSeed: fmt.Sprintf("molar-demo/%d/%d", tenantID, id)}
			return nil
		})
		if err != nil {
			return fmt.Errorf("viewer demo: %w", err)
		}
		if has || p.ID == "" {
			continue
		}
		for _, s := range studies {
			for i := range s.Images {
				key := strings.Join([]string{p.UIDSeed, p.ID, s.Key, fmt.Sprint(i)}, "/")
				var file []byte
				if f, ok := fileCache.Load(key); ok {
					file = f.([]byte)
				} else {
					file = s.File(p, i)
					fileCache.Store(key, file)
				}
				res, err := store(ctx, ingest.Source{TenantID: tenantID, AE: "DEMO", Part10: true, Size: int64(len(file))}, file)
				if err != nil {
					return fmt.Errorf("viewer demo: store %s image %d: %w", s.Key, i+1, err)
				}
				if res.PersonID != id {
					return fmt.Errorf("viewer demo: %s image %d did not reconcile to its child (%s)", s.Key, i+1, res.ReconState)
				}
			}
			if s.Key == "fmx" {
				if err := demoMount(ctx, pool, tenantID, id, "fmx", s.StudyUID(p)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// demoMount files a study's images into a new mount of the template.
func demoMount(ctx context.Context, pool postgres.Beginner, tenantID, personID int64, code, studyUID string) error {
	return postgres.InTenant(ctx, pool, tenantID, func(tx pgx.Tx) error {
		t, err := TemplateByCode(ctx, tx, code)
		if err != nil {
			return err
		}
		images, err := studyImages(ctx, tx, studyUID, false)
		if err != nil {
			return err
		}
		m, err := CreateMount(ctx, tx, tenantID, personID, 0, t, studyUID)
		if err != nil {
			return err
		}
		return SavePlacements(ctx, tx, tenantID, m.ID, Place(t, nil, mountCandidates(images)))
	})
}
