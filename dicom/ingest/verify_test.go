package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
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
	// cut, when set, says whether a body of key breaks off after 100 bytes.
	cut func(key string) bool
}

// breaking is a body that fails after n bytes.
type breaking struct {
	io.ReadCloser
	n int
}

func (b *breaking) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, errors.New("connection reset by peer")
	}
	if len(p) > b.n {
		p = p[:b.n]
	}
	n, err := b.ReadCloser.Read(p)
	b.n -= n
	return n, err
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
	rc, info, err := s.ObjectStore.Get(ctx, key, rng)
	if err == nil && s.cut != nil && s.cut(key) {
		rc = &breaking{rc, 100}
	}
	return rc, info, err
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

// TestVerifyReadsTwiceBeforeCallingItDamage: a body that breaks off once is
// read again and is fine; one that breaks off every time is unreadable.
func TestVerifyReadsTwiceBeforeCallingItDamage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	keys := map[string]string{}
	for i, name := range []string{"once", "always"} {
		inst := sample(fmt.Sprintf("%s.11.%d", dicomtest.Root, i+1))
		res, err := e.in.Ingest(ctx, cstore(inst, e.tenant, uid.ExplicitVRLittleEndian), bytes.NewReader(inst.DataSet(t, uid.ExplicitVRLittleEndian)))
		require.NoError(t, err)
		keys[name] = res.ObjectKey
	}
	var cutOnce sync.Once
	store := &damagedStore{ObjectStore: e.store, before: func(string) error { return nil }, cut: func(key string) bool {
		if key == keys["always"] {
			return true
		}
		cut := false
		if key == keys["once"] {
			cutOnce.Do(func() { cut = true })
		}
		return cut
	}}
	var got []Problem
	rep, err := Verify(ctx, e.db.App, store, VerifyOptions{Hash: true, Problem: func(p Problem) { got = append(got, p) }})
	require.NoError(t, err)
	require.Equal(t, int64(2), rep.Instances)
	require.Len(t, got, 1)
	require.Equal(t, keys["always"], got[0].Key)
	require.Equal(t, ProblemRead, got[0].Kind)
}
