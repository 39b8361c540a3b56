package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/uid"
	"github.com/molar-health/molar/storage/postgres"
)

// TestImportCommand: `molar import` walks folders, stores Part-10 files and
// bare data sets through the ingest path, reports failures per file, and a
// second run finds everything present.
func TestImportCommand(t *testing.T) {
	env, db, ten := tenantEnv(t)
	ctx := context.Background()

	dir := t.TempDir()
	sub := filepath.Join(dir, "a", "b")
	require.NoError(t, os.MkdirAll(sub, 0o755))
	for i := 0; i < 4; i++ {
		in := dicomtest.Instance{PatientID: "0101154321", PatientName: "Ørsted^Åse", StudyUID: dicomtest.Root + ".60", SeriesUID: dicomtest.Root + ".60.1",
			SOPUID: fmt.Sprintf("%s.60.1.%d", dicomtest.Root, i), InstanceNumber: i}
		in.Write(t, filepath.Join(sub, fmt.Sprintf("img%d.dcm", i)))
	}
	bare := dicomtest.Instance{PatientID: "X", StudyUID: dicomtest.Root + ".61", SeriesUID: dicomtest.Root + ".61.1", SOPUID: dicomtest.Root + ".61.1.1"}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bare.dcm"), bare.DataSet(t, uid.ImplicitVRLittleEndian), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not dicom at all, just text"), 0o644))

	code, out, _ := runCmd(t, env, "import", "--quiet", dir)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "notes.txt: not stored")
	require.Contains(t, out, "5 stored, 0 already present, 1 failed (of 6 files)")

	code, out, _ = runCmd(t, env, "import", "--quiet", sub)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "0 stored, 4 already present, 0 failed")

	require.NoError(t, postgres.InTenant(ctx, db.App, ten.ID, func(tx pgx.Tx) error {
		st, err := index.GetStudy(ctx, tx, dicomtest.Root+".60")
		require.NoError(t, err)
		require.Equal(t, 4, st.NumInstances)
		in, err := index.GetInstance(ctx, tx, dicomtest.Root+".61.1.1")
		require.NoError(t, err)
		require.Equal(t, uid.ImplicitVRLittleEndian, in.TransferSyntax)
		require.Equal(t, "import", in.SourceAE)
		return nil
	}))
}

// TestArchiveVerifyCommand: `molar archive verify` passes on an intact
// archive and names each lost or damaged object (not the patient), with a
// non-zero exit status.
func TestArchiveVerifyCommand(t *testing.T) {
	env, db, ten := tenantEnv(t)
	ctx := context.Background()
	dir := t.TempDir()
	for i := 0; i < 3; i++ {
		in := dicomtest.Instance{PatientID: "0101154321", PatientName: "Ørsted^Åse", StudyUID: dicomtest.Root + ".70", SeriesUID: dicomtest.Root + ".70.1",
			SOPUID: fmt.Sprintf("%s.70.1.%d", dicomtest.Root, i), InstanceNumber: i}
		in.Write(t, filepath.Join(dir, fmt.Sprintf("img%d.dcm", i)))
	}
	code, out, _ := runCmd(t, env, "import", "--quiet", dir)
	require.Equal(t, 0, code, out)

	code, out, errs := runCmd(t, env, "archive", "verify", "--quiet", "--hash")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "3 instances checked")
	require.Contains(t, out, "no problems")

	var keys []string
	require.NoError(t, postgres.InTenant(ctx, db.App, ten.ID, func(tx pgx.Tx) error {
		ins, err := index.InstancesOfStudy(ctx, tx, dicomtest.Root+".70")
		for _, in := range ins {
			keys = append(keys, in.ObjectKey)
		}
		return err
	}))
	require.Len(t, keys, 3)
	objects := filepath.Join(env["MOLAR_DATA_DIR"], "objects")
	require.NoError(t, os.Remove(filepath.Join(objects, keys[0])))
	b, err := os.ReadFile(filepath.Join(objects, keys[1]))
	require.NoError(t, err)
	b[len(b)-1] ^= 1
	require.NoError(t, os.WriteFile(filepath.Join(objects, keys[1]), b, 0o644))

	code, out, _ = runCmd(t, env, "archive", "verify", "--quiet")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, keys[0]+": missing")
	require.NotContains(t, out, keys[1], "same size: only --hash sees it")
	code, out, errs = runCmd(t, env, "archive", "verify", "--quiet", "--hash")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, keys[0]+": missing")
	require.Contains(t, out, keys[1]+": wrong-hash")
	require.Contains(t, out, "1 missing\n1 wrong-hash\n")
	require.Contains(t, errs, "2 instance(s)")
	require.NotContains(t, out+errs, "Ørsted")
	require.NotContains(t, out+errs, "0101154321")

	code, _, errs = runCmd(t, env, "archive", "check")
	require.Equal(t, 2, code)
	require.Contains(t, errs, "usage: molar archive verify")
}
