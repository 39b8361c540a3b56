// Package scp assembles Molar's DICOM service class provider from its parts:
// the association policy (known AEs and their permissions from the AE
// registry, unknown AEs when allowed), and Prometheus metrics for
// associations and DIMSE operations. The handlers (ingest, query, retrieve,
// worklist) come from their own packages.
package scp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/index"
)

// UnknownServices are what an unregistered AE may do when unknown AEs are
// accepted (MOLAR_DICOM_ACCEPT_UNKNOWN): verify and store, never query or
// retrieve.
const UnknownServices = dimse.ServiceEcho | dimse.ServiceStore

// ServicesOf maps AE permissions to DIMSE services.
func ServicesOf(perms []string) dimse.Services {
	s := dimse.ServiceEcho
	for _, p := range perms {
		switch p {
		case index.PermStore: // and storage commitment of what it stored
			s |= dimse.ServiceStore | dimse.ServiceCommit
		case index.PermFind:
			s |= dimse.ServiceFind
		case index.PermMove:
			s |= dimse.ServiceMove
		case index.PermGet:
			s |= dimse.ServiceGet
		}
	}
	return s
}

// Caller is the Decision.Value handlers get: who is calling.
type Caller struct {
	AE    index.AE // zero Title for an unknown AE
	Known bool
	// TenantID is the municipality the association stores into and queries:
	// the AE's, else the default tenant (index.TenantOf); 0 when there is
	// none (several tenants and an AE without one): storing then fails.
	TenantID int64
	// UserID is the account that signed the association (User Identity
	// Negotiation of a RequireUser AE, CheckUsers); 0 when none.
	UserID int64
}

// Account is the account that signed the association in (0 when none):
// the audit log's actor beside the AE.
func (c Caller) Account() int64 { return c.UserID }

// Policy decides associations: the called AE must be ours (the server checks
// it too), a registered calling AE gets the services of its permissions, an
// unknown one gets UnknownServices when acceptUnknown, else a rejection
// ("calling AE not recognized"). A database failure rejects transiently.
func Policy(q index.Querier, acceptUnknown bool, log *slog.Logger, opts ...PolicyOption) dimse.Policy {
	var o policyOptions
	for _, f := range opts {
		f(&o)
	}
	return func(ctx context.Context, req *dimse.AssociationRequest) dimse.Decision {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		ae, err := index.GetAE(ctx, q, strings.TrimSpace(req.CallingAE))
		d := decide(ctx, q, acceptUnknown, log, o, req, ae, err)
		if d.Reject != nil {
			return d
		}
		return o.signIn(ctx, log, req, d, err == nil && ae.RequireUser)
	}
}

// decide is the AE-level decision: registered, unknown or refused.
func decide(ctx context.Context, q index.Querier, acceptUnknown bool, log *slog.Logger, o policyOptions,
	req *dimse.AssociationRequest, ae index.AE, err error) dimse.Decision {
	if err == nil && o.checkHost && !hostMatches(ctx, ae.Host, req.RemoteAddr) {
		// A registered title from another address: an AE title is no
		// credential, the device's address is part of its registration.
		log.Warn("association rejected: calling AE from an address it is not registered at", "association", req.ID,
			"calling_ae", req.CallingAE, "remote", addrString(req.RemoteAddr), "registered_host", ae.Host)
		return dimse.RejectCallingAE()
	}
	switch {
	case err == nil:
		tenant, terr := index.TenantOf(ctx, q, ae)
		if terr != nil {
			log.Warn("association: no tenant for AE", "association", req.ID, "calling_ae", req.CallingAE, "err", terr)
		}
		return dimse.Decision{Services: ServicesOf(ae.Permissions), Value: Caller{AE: ae, Known: true, TenantID: tenant}}
	case errors.Is(err, index.ErrNotFound) && acceptUnknown:
		tenant, terr := index.DefaultTenant(ctx, q)
		if terr != nil {
			log.Warn("association: no default tenant for an unknown AE", "association", req.ID, "calling_ae", req.CallingAE, "err", terr)
		}
		return dimse.Decision{Services: UnknownServices, Value: Caller{TenantID: tenant}}
	case errors.Is(err, index.ErrNotFound):
		log.Info("association rejected: unknown calling AE", "association", req.ID, "calling_ae", req.CallingAE, "remote", req.RemoteAddr.String())
		return dimse.RejectCallingAE()
	default:
		log.Error("association policy: AE registry unavailable", "association", req.ID, "err", err)
		return dimse.RejectTemporarily()
	}
}

// PolicyOption tunes Policy.
type PolicyOption func(*policyOptions)

type policyOptions struct {
	checkHost bool
	checkUser UserCheck
}

// UserCheck verifies a user identity of an A-ASSOCIATE-RQ (username and
// passcode, or a JWT) from remote and returns the account. Refusals wrap
// ErrUserRefused; other errors (the database, the identity provider, a
// rate limit) reject the association transiently.
type UserCheck func(ctx context.Context, id *dimse.UserIdentity, remote net.Addr) (AssociationUser, error)

// AssociationUser is the account that signed an association.
type AssociationUser struct {
	ID       int64
	TenantID int64
	// Services are what the account's role may do over DICOM (store needs
	// the right to add images, find and retrieve the right to read them).
	Services dimse.Services
}

// ErrUserRefused is a user identity that does not sign in.
var ErrUserRefused = errors.New("dicom: user identity refused")

// CheckUsers makes Policy verify the user identities (PS3.7 D.3.3.7) of AEs
// registered with RequireUser, with f: such an association must sign in
// with a username and passcode or a JWT of an account of the AE's
// municipality, and may then do what both the AE and the account may.
// Without one, or when it does not sign in, the association is rejected.
// Identities sent by other AEs are ignored, as devices send credentials
// meant for other archives (checking them would reject those devices and
// count towards the lock-out of same-named accounts). Kerberos and SAML
// identities are not verified: they count as none. Without CheckUsers,
// RequireUser AEs are rejected.
func CheckUsers(f UserCheck) PolicyOption { return func(o *policyOptions) { o.checkUser = f } }

// signIn applies the user identity of a RequireUser AE's association to an
// accepting decision.
func (o policyOptions) signIn(ctx context.Context, log *slog.Logger, req *dimse.AssociationRequest, d dimse.Decision, required bool) dimse.Decision {
	if !required {
		return d
	}
	id := req.UserIdentity
	if o.checkUser == nil || id == nil || (id.Type != dimse.IdentityUsernamePasscode && id.Type != dimse.IdentityJWT) {
		log.Info("association rejected: the AE must sign in with a user identity", "association", req.ID, "calling_ae", req.CallingAE,
			"user_identity", id.Kind())
		return dimse.RejectUserIdentity()
	}
	u, err := o.checkUser(ctx, id, req.RemoteAddr)
	if errors.Is(err, ErrUserRefused) {
		log.Info("association rejected: user identity refused", "association", req.ID, "calling_ae", req.CallingAE,
			"remote", addrString(req.RemoteAddr), "err", err)
		return dimse.RejectUserIdentity()
	}
	if err != nil {
		log.Warn("association rejected for now: user identity not checked", "association", req.ID, "calling_ae", req.CallingAE, "err", err)
		return dimse.RejectTemporarily()
	}
	c, _ := d.Value.(Caller)
	if c.TenantID == 0 || u.TenantID != c.TenantID {
		// An AE without a municipality (several on the installation) has
		// no account that may sign in for it.
		log.Info("association rejected: the account is not of the AE's municipality", "association", req.ID,
			"calling_ae", req.CallingAE, "user_id", u.ID)
		return dimse.RejectUserIdentity()
	}
	c.UserID = u.ID
	d.Value = c
	d.Services &= u.Services | dimse.ServiceEcho
	d.UserIdentityVerified = true
	return d
}

// CheckHost makes Policy accept a registered AE only from its registered
// host (an IP address, or a name resolving to the peer's address;
// MOLAR_DICOM_CHECK_HOST). Off behind NAT or a DICOM proxy, where every
// device appears to come from one address.
func CheckHost(on bool) PolicyOption { return func(o *policyOptions) { o.checkHost = on } }

// hostMatches reports whether the peer at remote is the registered host.
func hostMatches(ctx context.Context, host string, remote net.Addr) bool {
	peer := net.ParseIP(dimse.PeerHost(remote))
	if peer == nil {
		return false
	}
	host = strings.TrimSpace(host)
	if ip := net.ParseIP(host); ip != nil {
		return ip.Equal(peer)
	}
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if a.IP.Equal(peer) {
			return true
		}
	}
	return false
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// Metrics are the DICOM Prometheus metrics.
type Metrics struct {
	Associations  *prometheus.CounterVec
	Active        prometheus.Gauge
	Rejected      prometheus.Counter
	Operations    *prometheus.CounterVec
	Duration      *prometheus.HistogramVec
	Bytes         *prometheus.CounterVec
	Instances     prometheus.Counter
	InstanceBytes prometheus.Counter
}

// NewMetrics registers the DICOM metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Associations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "molar_dicom_associations_total", Help: "DICOM associations by how they ended."}, []string{"reason"}),
		Active:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "molar_dicom_associations_active", Help: "DICOM associations open now."}),
		Rejected:     prometheus.NewCounter(prometheus.CounterOpts{Name: "molar_dicom_associations_rejected_total", Help: "DICOM association requests rejected."}),
		Operations:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "molar_dicom_operations_total", Help: "DIMSE operations by type and status class."}, []string{"op", "status"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "molar_dicom_operation_duration_seconds", Help: "DIMSE operation latency.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"op"}),
		Bytes:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "molar_dicom_bytes_total", Help: "Data set bytes received and sent."}, []string{"direction"}),
		Instances:     prometheus.NewCounter(prometheus.CounterOpts{Name: "molar_dicom_instances_stored_total", Help: "Instances stored (C-STORE Success)."}),
		InstanceBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "molar_dicom_instance_bytes_stored_total", Help: "Bytes of instances stored."}),
	}
	reg.MustRegister(m.Associations, m.Active, m.Rejected, m.Operations, m.Duration, m.Bytes, m.Instances, m.InstanceBytes)
	return m
}

// StatusClass names a status for metrics: success, pending, warning, cancel, failure.
func StatusClass(s dimse.Status) string {
	switch {
	case s == 0x0000:
		return "success"
	case s == 0xFF00 || s == 0xFF01:
		return "pending"
	case s == 0xFE00:
		return "cancel"
	case s == 0x0001 || s == 0x0107 || s == 0x0116 || s&0xF000 == 0xB000:
		return "warning"
	default:
		return "failure"
	}
}

// Hooks feeds the metrics from the server's hooks.
func (m *Metrics) Hooks() dimse.Hooks {
	return dimse.Hooks{
		AssociationRejected: func(*dimse.AssociationRequest, *dimse.AssociateRJ) { m.Rejected.Inc() },
		AssociationOpened:   func(*dimse.AssociationInfo) { m.Active.Inc() },
		AssociationClosed: func(_ *dimse.AssociationInfo, reason string, _ dimse.AssociationStats) {
			m.Active.Dec()
			m.Associations.WithLabelValues(reason).Inc()
		},
		DIMSE: func(_ *dimse.AssociationInfo, op string, st dimse.Status, d time.Duration, n int64) {
			class := StatusClass(st)
			m.Operations.WithLabelValues(op, class).Inc()
			m.Duration.WithLabelValues(op).Observe(d.Seconds())
			dir := "in"
			if op == "C-STORE-SUBOP" {
				dir = "out"
			}
			m.Bytes.WithLabelValues(dir).Add(float64(n))
			if op == "C-STORE" && class == "success" {
				m.Instances.Inc()
				m.InstanceBytes.Add(float64(n))
			}
		},
	}
}

// LogAssociations adds the association log (dicom.association_log, for
// admins) to hooks: every association with its peer, AEs, counts and how it
// ended, and every rejected request. Writes happen off the association's
// goroutine; a failed write is logged and never affects the association.
func LogAssociations(h dimse.Hooks, q index.Querier, log *slog.Logger) dimse.Hooks {
	write := func(a index.Association) {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := index.LogAssociation(ctx, q, a); err != nil {
				log.Warn("association log", "association", a.Association, "err", err)
			}
		}()
	}
	peer := func(addr interface{ String() string }) string {
		if addr == nil {
			return ""
		}
		return addr.String()
	}
	rejected, closed := h.AssociationRejected, h.AssociationClosed
	h.AssociationRejected = func(req *dimse.AssociationRequest, rj *dimse.AssociateRJ) {
		if rejected != nil {
			rejected(req, rj)
		}
		now := time.Now()
		write(index.Association{Association: req.ID, CallingAE: req.CallingAE, CalledAE: req.CalledAE, Peer: peer(req.RemoteAddr),
			Opened: now, Closed: now, Outcome: fmt.Sprintf("rejected (reason %d)", rj.Reason)})
	}
	h.AssociationClosed = func(info *dimse.AssociationInfo, reason string, st dimse.AssociationStats) {
		if closed != nil {
			closed(info, reason, st)
		}
		c, _ := info.Value.(Caller)
		write(index.Association{Association: info.ID, CallingAE: info.CallingAE, CalledAE: info.CalledAE, Peer: peer(info.RemoteAddr),
			KnownAE: c.Known, Opened: info.Opened, Closed: time.Now(), Outcome: reason, Requests: st.Requests, Stored: st.Stores,
			Failed: st.StoreFailures, BytesIn: st.BytesIn, BytesOut: st.BytesOut, Implementation: info.ImplementationVersionName,
			TenantID: c.TenantID, UserID: c.UserID})
	}
	return h
}
