package main

import "github.com/go-chi/chi/v5"

// reconciliationRoutes mounts the reconciliation pages and JSON API.
func (s *server) reconciliationRoutes(r chi.Router) {}
