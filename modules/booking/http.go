package booking

import "github.com/go-chi/chi/v5"

// Routes implements modules.Module.
func (m *Module) Routes(r chi.Router) {}
