package scp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/dimse"
)

// TestSignIn: the user identity rules of Policy, per case.
func TestSignIn(t *testing.T) {
	const tenant = 7
	passcode := &dimse.UserIdentity{Type: dimse.IdentityUsernamePasscode, Primary: []byte("kim"), Secondary: []byte("pw")}
	jwt := &dimse.UserIdentity{Type: dimse.IdentityJWT, Primary: []byte("a.b.c")}
	storer := AssociationUser{ID: 3, TenantID: tenant, Services: dimse.ServiceEcho | dimse.ServiceStore | dimse.ServiceCommit}
	reader := AssociationUser{ID: 4, TenantID: tenant, Services: dimse.ServiceEcho | dimse.ServiceFind | dimse.ServiceMove | dimse.ServiceGet}
	aeAll := dimse.ServiceEcho | dimse.ServiceStore | dimse.ServiceFind | dimse.ServiceCommit
	ok := func(u AssociationUser) UserCheck {
		return func(context.Context, *dimse.UserIdentity, net.Addr) (AssociationUser, error) { return u, nil }
	}
	fail := func(err error) UserCheck {
		return func(context.Context, *dimse.UserIdentity, net.Addr) (AssociationUser, error) { return AssociationUser{}, err }
	}
	for _, c := range []struct {
		name     string
		check    UserCheck
		id       *dimse.UserIdentity
		required bool
		tenant   int64
		// want: services granted (0 = rejected), the source of a rejection
		// and whether it is transient, the signed-in account.
		services  dimse.Services
		source    byte
		transient bool
		user      int64
	}{
		{name: "not required, no identity", check: ok(storer), required: false, tenant: tenant, services: aeAll},
		{name: "not required, identity ignored", check: fail(ErrUserRefused), id: passcode, required: false, tenant: tenant, services: aeAll},
		{name: "required, no identity", check: ok(storer), required: true, tenant: tenant, source: dimse.RejectSourceServiceProviderACSE},
		{name: "required, username only", check: ok(storer), id: &dimse.UserIdentity{Type: dimse.IdentityUsername, Primary: []byte("kim")}, required: true, tenant: tenant, source: dimse.RejectSourceServiceProviderACSE},
		{name: "required, Kerberos is not verified", check: ok(storer), id: &dimse.UserIdentity{Type: dimse.IdentityKerberos, Primary: []byte{1}}, required: true, tenant: tenant, source: dimse.RejectSourceServiceProviderACSE},
		{name: "required, SAML is not verified", check: ok(storer), id: &dimse.UserIdentity{Type: dimse.IdentitySAML, Primary: []byte("<a/>")}, required: true, tenant: tenant, source: dimse.RejectSourceServiceProviderACSE},
		{name: "required, no accounts in this server", id: passcode, required: true, tenant: tenant, source: dimse.RejectSourceServiceProviderACSE},
		{name: "required, wrong passcode", check: fail(fmt.Errorf("%w: wrong", ErrUserRefused)), id: passcode, required: true, tenant: tenant, source: dimse.RejectSourceServiceProviderACSE},
		{name: "required, rate limit or database: transient", check: fail(errors.New("database down")), id: passcode, required: true, tenant: tenant, source: dimse.RejectSourceServiceProviderPresent, transient: true},
		{name: "required, account of another municipality", check: ok(AssociationUser{ID: 9, TenantID: tenant + 1, Services: storer.Services}), id: passcode, required: true, tenant: tenant, source: dimse.RejectSourceServiceProviderACSE},
		{name: "required, AE without a municipality", check: ok(storer), id: passcode, required: true, tenant: 0, source: dimse.RejectSourceServiceProviderACSE},
		{name: "required, passcode signs in: the AE's services the account has", check: ok(storer), id: passcode, required: true, tenant: tenant, services: dimse.ServiceEcho | dimse.ServiceStore | dimse.ServiceCommit, user: 3},
		{name: "required, JWT signs in, a reader may not store", check: ok(reader), id: jwt, required: true, tenant: tenant, services: dimse.ServiceEcho | dimse.ServiceFind, user: 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := policyOptions{checkUser: c.check}
			req := &dimse.AssociationRequest{ID: "a1", CallingAE: "SENSOR", UserIdentity: c.id}
			d := dimse.Decision{Services: aeAll, Value: Caller{Known: true, TenantID: c.tenant}}
			got := o.signIn(context.Background(), slog.New(slog.DiscardHandler), req, d, c.required)
			if c.services == 0 {
				require.NotNil(t, got.Reject)
				assert.Equal(t, c.source, got.Reject.Source)
				assert.Equal(t, c.transient, got.Reject.Result == dimse.RejectTransient)
				return
			}
			require.Nil(t, got.Reject)
			assert.Equal(t, c.services, got.Services)
			assert.Equal(t, c.user, got.Value.(Caller).UserID)
			assert.Equal(t, c.user != 0, got.UserIdentityVerified)
		})
	}
}
