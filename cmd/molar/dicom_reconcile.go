package main

import (
	"github.com/go-chi/chi/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/dicom/reconcile"
)

// prepareReconciliation registers the reconciliation permission, pages and
// texts (clinic admins and dentists settle studies that did not match the
// register).
func (s *server) prepareReconciliation() error {
	for _, role := range reconcile.Roles {
		auth.RegisterPermissions(role, reconcile.Perm)
	}
	s.shell.Catalog.Add(reconcile.Messages())
	fsys, pattern := reconcile.Pages()
	return s.shell.AddPages(fsys, pattern)
}

// reconciliationRoutes mounts the reconciliation pages and JSON API.
func (s *server) reconciliationRoutes(r chi.Router) {
	h := &reconcile.Handler{DB: s.db.pool, Shell: s.shell, Auth: s.auth}
	h.Routes(r)
}
