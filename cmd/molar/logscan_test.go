package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/storage/postgres"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestLogsCarryNoPersonData: with debug logging, every role requests every
// route (with CPR numbers and names in queries and forms, failed logins
// with a CPR number as user name, searches by CPR and name): no CPR number
// and no name of any person of the register reaches the log.
func TestLogsCarryNoPersonData(t *testing.T) {
	var logs syncBuffer
	ts := newTestServerLog(t, nil, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx := context.Background()
	var persons []auth.Person
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id FROM auth.person`)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		for _, id := range ids {
			p, err := auth.GetPerson(ctx, tx, id)
			if err != nil {
				return err
			}
			persons = append(persons, p)
		}
		return nil
	}))
	require.NotEmpty(t, persons)
	child := persons[0]
	for _, p := range persons {
		if p.ID == ts.demo.Children[0].PersonID {
			child = p
		}
	}
	cpr, name := child.CPR.Formatted(), child.GivenName+" "+child.FamilyName

	// Failed logins naming a person.
	anon := ts.client(t)
	for _, u := range []string{cpr, child.CPR.Digits(), name} {
		resp, err := anon.Get(ts.URL + "/login")
		require.NoError(t, err)
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		form := url.Values{"username": {u}, "password": {"wrong password"}, "csrf_token": {csrfField.FindStringSubmatch(string(page))[1]}}
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", ts.URL)
		resp, err = anon.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	}

	params := map[string]string{"person": strconv.FormatInt(child.ID, 10), "unit": strconv.FormatInt(ts.demo.ClinicID, 10), "clinic": strconv.FormatInt(ts.demo.ClinicID, 10)}
	query := url.Values{"q": {cpr}, "cpr": {cpr}, "name": {name}}.Encode()
	routes := walkRoutes(t, ts.router)
	for _, role := range auth.Roles() {
		username := ""
		for _, l := range ts.demo.Logins {
			if l.Role == role {
				username = l.Username
				break
			}
		}
		c, csrf := ts.login(t, username)
		for _, rt := range routes {
			if rt.pattern == "/logout" {
				continue
			}
			u := ts.URL + concrete(rt.pattern, params) + "?" + query
			var body *strings.Reader
			if rt.method == http.MethodGet {
				body = strings.NewReader("")
			} else {
				body = strings.NewReader(url.Values{"csrf_token": {csrf}, "cpr": {cpr}, "name": {name}, "patient_id": {cpr},
					"reason": {name}, "body": {name}, "text": {cpr}}.Encode())
			}
			req, _ := http.NewRequest(rt.method, u, body)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", ts.URL)
			resp, err := c.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
		}
	}

	out := logs.String()
	require.NotEmpty(t, out)
	for _, p := range persons {
		if !p.CPR.IsZero() {
			require.NotContains(t, out, p.CPR.Formatted(), "a CPR number in the log")
			require.NotContains(t, out, p.CPR.Digits(), "a CPR number in the log")
		}
		require.NotContains(t, out, p.GivenName+" "+p.FamilyName, "a name in the log")
		require.NotContains(t, out, p.FamilyName+"^"+p.GivenName, "a name in the log")
	}
}
