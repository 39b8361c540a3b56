package booking

import (
	"context"

	"github.com/molar-health/molar/modules"
)

// SeedDemo implements modules.Seeder.
func (m *Module) SeedDemo(ctx context.Context, d modules.Demo) error { return nil }
