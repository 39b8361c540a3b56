package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/uid"
	"github.com/molar-health/molar/storage"
)

// damagedStore is the test's object store with hooks on Stat and Get.
type damagedStore struct {
	storage.ObjectStore
	before func(key string) error
}

func (s *damagedStore) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if err := s.before(key); err != nil {
		return storage.ObjectInfo{}, err
	}
	return s.ObjectStore.Stat(ctx, key)
}

func (s *damagedStore) Get(ctx context.Context, key string, rng *storage.Range) (_ io.ReadCloser, _ storage.ObjectInfo, _ error) {
	if err := s.before(key); err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	return s.ObjectStore.Get(ctx, key, rng)
}

func TestVerifyFindsLostAndDamagedObjects(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	other, err := auth.CreateTenant(ctx, e.db.Admin, "0202", "Other")
	require.NoError(t, err)
	keys := map[string]string{} // name -> object key
	ids := map[string]int64{}
	for i, name := range []string{"ok", "lost", "same-size", "shorter", "deleted-meanwhile", "other-tenant"} {
		inst := sample(fmt.Sprintf("%s.9.%d", dicomtest.Root, i+1))
		tenant := e.tenant
		if name == "other-tenant" {
			tenant = other.ID
		}
		res, err := e.in.Ingest(ctx, cstore(inst, tenant, uid.ExplicitVRLittleEndian), bytes.NewReader(inst.DataSet(t, uid.ExplicitVRLittleEndian)))
		require.NoError(t, err)
		keys[name], ids[name] = res.ObjectKey, res.InstanceID
	}
	put := func(key string, b []byte) {
		_, err := e.store.Put(ctx, key, bytes.NewReader(b), storage.PutOptions{Size: int64(len(b))})
		require.NoError(t, err)
	}
	require.NoError(t, e.store.Delete(ctx, keys["lost"]))
	orig := e.get(t, keys["same-size"])
	flipped := bytes.Clone(orig)
	flipped[len(flipped)-1] ^= 0xff // one bit of pixel data: only the hash sees it
	put(keys["same-size"], flipped)
	put(keys["shorter"], e.get(t, keys["shorter"])[:100])
	// The other tenant's object is damaged too: the check covers every tenant.
	require.NoError(t, e.store.Delete(ctx, keys["other-tenant"]))
	// This one is deleted by staff while the check looks at it (its object
	// first, as deletion does): no problem.
	store := &damagedStore{ObjectStore: e.store, before: func(key string) error {
		if key == keys["deleted-meanwhile"] {
			if err := e.store.Delete(ctx, key); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return err
			}
			_, err := e.db.Admin.Exec(ctx, `DELETE FROM dicom.instance WHERE id = $1`, ids["deleted-meanwhile"])
			return err
		}
		return nil
	}}

	type found struct {
		name, kind string
	}
	nameOf := map[string]string{}
	for n, k := range keys {
		nameOf[k] = n
	}
	for _, tc := range []struct {
		hash bool
		want []found
	}{
		{false, []found{{"lost", ProblemMissing}, {"other-tenant", ProblemMissing}, {"shorter", ProblemSize}}},
		{true, []found{{"lost", ProblemMissing}, {"other-tenant", ProblemMissing}, {"same-size", ProblemSHA256}, {"shorter", ProblemSize}}},
	} {
		t.Run(fmt.Sprintf("hash=%v", tc.hash), func(t *testing.T) {
			var got []found
			var started, progressed int64
			rep, err := Verify(ctx, e.db.App, store, VerifyOptions{Hash: tc.hash, Parallel: 3,
				Start:    func(n, _ int64) { started = n },
				Progress: func(int64) { progressed++ },
				Problem: func(p Problem) {
					require.NotContains(t, p.String(), "Ørsted", "no patient names in reports")
					got = append(got, found{nameOf[p.Key], p.Kind})
				}})
			require.NoError(t, err)
			sort.Slice(got, func(i, j int) bool { return got[i].name < got[j].name })
			require.Equal(t, tc.want, got)
			require.Equal(t, len(tc.want), rep.Total())
			require.Equal(t, started, rep.Instances)
			require.Equal(t, progressed, rep.Instances)
			require.GreaterOrEqual(t, rep.Instances, int64(5))
		})
	}
}

func TestVerifyStopsWhenTheStoreFails(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i := range 3 {
		inst := sample(fmt.Sprintf("%s.10.%d", dicomtest.Root, i+1))
		_, err := e.in.Ingest(ctx, cstore(inst, e.tenant, uid.ExplicitVRLittleEndian), bytes.NewReader(inst.DataSet(t, uid.ExplicitVRLittleEndian)))
		require.NoError(t, err)
	}
	down := errors.New("connection refused")
	store := &damagedStore{ObjectStore: e.store, before: func(string) error { return down }}
	var problems int
	_, err := Verify(ctx, e.db.App, store, VerifyOptions{Problem: func(Problem) { problems++ }})
	require.ErrorIs(t, err, down, "an unreachable store is an error, not a list of lost objects")
	require.Zero(t, problems)
}
