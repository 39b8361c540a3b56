package auth

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// Usernames go into every audit row of the user (and citizens' access
// logs): a CPR number is refused as one.
func TestCreateUserRefusesCPRUsername(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	for _, name := range []string{"0101901234", "010190-1234"} {
		_, err := e.svc.CreateUser(ctx, NewUser{TenantID: e.tenant.ID, Username: name, Role: RoleNurse, Password: goodPassword})
		require.ErrorIs(t, err, ErrInvalidInput, name)
	}
	_, err := e.svc.CreateUser(ctx, NewUser{TenantID: e.tenant.ID, Username: "nurse-0101", Role: RoleNurse})
	require.NoError(t, err)
}
