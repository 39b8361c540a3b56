package interop

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/ingest"
	"github.com/molar-health/molar/dicom/query"
	"github.com/molar-health/molar/dicom/scp"
	"github.com/molar-health/molar/storage"
	fsstore "github.com/molar-health/molar/storage/fs"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/storage/postgres/pgtest"
	s3store "github.com/molar-health/molar/storage/s3"
	"github.com/molar-health/molar/storage/storagetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// molar is an SCP wired like `molar serve` (policy, ingest, query,
// transcoding) on a fresh database and object store.
type molar struct {
	db     *pgtest.DB
	store  storage.ObjectStore
	tenant int64
	srv    *dimse.Server
	in     *ingest.Ingester
	addr   string
}

func logger(t testing.TB) *slog.Logger {
	if os.Getenv("INTEROP_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func startMolar(t testing.TB, s3 bool, policy index.DuplicatePolicy) *molar {
	return startMolarWith(t, s3, policy)
}

// startMolarWith is startMolar with association policy options.
func startMolarWith(t testing.TB, s3 bool, policy index.DuplicatePolicy, opts ...scp.PolicyOption) *molar {
	db := pgtest.Open(t, auth.Migrations(), audit.Migrations(), index.Migrations())
	ctx := context.Background()
	ten, err := auth.CreateTenant(ctx, db.Admin, "0101", "Testkommune")
	require.NoError(t, err)
	m := &molar{db: db, tenant: ten.ID}
	if s3 {
		ep, ak, sk := storagetest.StartVersityGW(t)
		m.store, err = s3store.New(ctx, s3store.Config{Endpoint: ep, Bucket: storagetest.RandomBucket(), AccessKey: ak, SecretKey: sk})
		require.NoError(t, err)
	} else {
		m.store, err = fsstore.New(t.TempDir())
		require.NoError(t, err)
	}
	log := logger(t)
	m.in = &ingest.Ingester{DB: db.App, Store: m.store, Policy: policy, Logger: log}
	tenant := func(a *dimse.AssociationInfo) (int64, error) {
		if c, ok := a.Value.(scp.Caller); ok && c.TenantID != 0 {
			return c.TenantID, nil
		}
		return 0, index.ErrNoDefaultTenant
	}
	q := &query.Service{DB: db.App, Store: m.store, AETitle: "MOLAR", Tenant: tenant, Logger: log}
	m.srv = &dimse.Server{AETitle: "MOLAR", Policy: scp.Policy(db.App, true, log, opts...), Logger: log,
		Store: m.in.StoreHandler(func(_ context.Context, a *dimse.AssociationInfo) (int64, error) { return tenant(a) }),
		Find:  q, Move: q, Get: q, Transcode: query.Transcode}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go m.srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.srv.Shutdown(ctx)
	})
	m.addr = ln.Addr().String()
	return m
}

// addAE registers a peer.
func (m *molar) addAE(t testing.TB, title, addr string, perms ...string) {
	h, p, _ := net.SplitHostPort(addr)
	var port int
	fmt.Sscan(p, &port)
	require.NoError(t, index.AddAE(context.Background(), m.db.App, index.AE{Title: title, Host: h, Port: port, Permissions: append([]string{"echo"}, perms...)}, true))
}

func (m *molar) inTenant(t testing.TB, fn func(tx pgx.Tx) error) {
	require.NoError(t, postgres.InTenant(context.Background(), m.db.App, m.tenant, fn))
}

func (m *molar) instance(t testing.TB, sop string) (index.Instance, error) {
	var in index.Instance
	err := postgres.InTenant(context.Background(), m.db.App, m.tenant, func(tx pgx.Tx) error {
		var err error
		in, err = index.GetInstance(context.Background(), tx, sop)
		return err
	})
	return in, err
}

// object reads a stored object.
func (m *molar) object(t testing.TB, key string) []byte {
	rc, _, err := m.store.Get(context.Background(), key, nil)
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return b
}

func (m *molar) count(t testing.TB) int {
	var n int
	require.NoError(t, m.db.Admin.QueryRow(context.Background(), `SELECT count(*) FROM dicom.instance`).Scan(&n))
	return n
}

func httpGet(t testing.TB, url string) []byte {
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode, url)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return b
}

// With CheckHost, a registered AE title is accepted only from its
// registered host (an address, or a name resolving to the peer); DCMTK's
// echoscu from 127.0.0.1 is the peer.
func TestCheckHostRejectsAnAETitleFromAnotherAddress(t *testing.T) {
	m := startMolarWith(t, false, index.KeepFirst, scp.CheckHost(true))
	m.addAE(t, "HERE", "127.0.0.1:104")
	m.addAE(t, "BYNAME", "localhost:104")
	m.addAE(t, "ELSEWHERE", "192.0.2.10:104")
	h, p := dicomtest.HostPort(t, m.addr)
	for _, c := range []struct {
		aet string
		ok  bool
	}{{"HERE", true}, {"BYNAME", true}, {"ELSEWHERE", false}} {
		out, err := dicomtest.Run(t, 30*time.Second, "echoscu", "-v", "-aet", c.aet, "-aec", "MOLAR", h, p)
		if c.ok {
			require.NoError(t, err, "%s: %s", c.aet, out)
			require.Contains(t, out, "Received Echo Response (Success)", c.aet)
		} else {
			require.Error(t, err, c.aet)
			require.Contains(t, out, "Calling AE Title Not Recognized", "%s: %s", c.aet, out)
		}
	}
}
