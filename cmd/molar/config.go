package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Config is every setting of `molar serve` (and of the admin commands that
// reach the same database and object store). Each setting is a flag and an
// environment variable; secrets are also read from NAME_FILE.
type Config struct {
	HTTPAddr        string
	PublicURL       string
	DICOMAddr       string
	AETitle         string
	AcceptUnknownAE bool
	CheckAEHost     bool
	DuplicatePolicy string
	DataDir         string
	DatabaseURL     string
	DatabaseAppURL  string
	PostgresBinDir  string
	CORSOrigins     string
	PortalXRays     bool
	DICOMTLSCert    string
	DICOMTLSKey     string
	DICOMTLSCA      string
	S3Endpoint      string
	S3Bucket        string
	S3AccessKey     string
	S3SecretKey     string
	S3TLS           bool
	S3Region        string
	OIDCIssuer      string
	OIDCClientID    string
	OIDCSecret      string
	OIDCCPRClaim    string
	OIDCRoleClaim   string
	OIDCRoleMap     string
	OIDCUnitMap     string
	OIDCACRValues   string
	SessionIdle     time.Duration
	CitizenIdle     time.Duration
	SessionMax      time.Duration
	LockoutAttempts int
	LockoutWindow   time.Duration
	ShutdownTimeout time.Duration
	LogLevel        string
	LogFormat       string
	Demo            bool
	// Booking notifications (modules/booking).
	SMTPAddr     string
	SMTPFrom     string
	SMTPUser     string
	SMTPPassword string
	SMTPTLS      string
	SMSURL       string
	SMSToken     string

	// DICOMPendingPerHost: 0 = no per-address bound.
	DICOMPendingPerHost int
}

// setting describes one configuration value.
type setting struct {
	flag, env, def, help string
	secret               bool
	set                  func(c *Config, v string) error
}

func str(p func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *p(c) = v; return nil }
}

func boolean(p func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", v)
		}
		*p(c) = b
		return nil
	}
}

func duration(p func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("want a positive duration such as 30s or 15m, got %q", v)
		}
		*p(c) = d
		return nil
	}
}

// count is integer that also takes 0.
func count(p func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("want a whole number of 0 or more, got %q", v)
		}
		*p(c) = n
		return nil
	}
}

func integer(p func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return fmt.Errorf("want a positive whole number, got %q", v)
		}
		*p(c) = n
		return nil
	}
}

var settings = []setting{
	{"http-addr", "MOLAR_HTTP_ADDR", "127.0.0.1:8080", "HTTP listen address (web UI, DICOMweb, APIs)", false, str(func(c *Config) *string { return &c.HTTPAddr })},
	{"public-url", "MOLAR_PUBLIC_URL", "", "URL users reach Molar at (cookies get Secure on https; OIDC redirect); default http://<http-addr>", false, str(func(c *Config) *string { return &c.PublicURL })},
	{"dicom-addr", "MOLAR_DICOM_ADDR", "127.0.0.1:11112", "DICOM (DIMSE) listen address", false, str(func(c *Config) *string { return &c.DICOMAddr })},
	{"ae-title", "MOLAR_AE_TITLE", "MOLAR", "our DICOM application entity title", false, str(func(c *Config) *string { return &c.AETitle })},
	{"dicom-pending-per-host", "MOLAR_DICOM_PENDING_PER_HOST", "8", "DICOM connections one address may have negotiating at once (of 32); 0 = no per-address bound, when peers share an address (NAT, a TCP load balancer)", false, count(func(c *Config) *int { return &c.DICOMPendingPerHost })},
	{"dicom-accept-unknown", "MOLAR_DICOM_ACCEPT_UNKNOWN", "false", "accept associations from AEs not registered with `molar ae add` (echo and store only)", false, boolean(func(c *Config) *bool { return &c.AcceptUnknownAE })},
	{"dicom-check-host", "MOLAR_DICOM_CHECK_HOST", "false", "accept a registered AE only from its registered host (off behind NAT or a DICOM proxy)", false, boolean(func(c *Config) *bool { return &c.CheckAEHost })},
	{"dicom-tls-cert", "MOLAR_DICOM_TLS_CERT", "", "PEM certificate file: serve DICOM over TLS (with --dicom-tls-key)", false, str(func(c *Config) *string { return &c.DICOMTLSCert })},
	{"dicom-tls-key", "MOLAR_DICOM_TLS_KEY", "", "PEM private key file for DICOM TLS", false, str(func(c *Config) *string { return &c.DICOMTLSKey })},
	{"dicom-tls-ca", "MOLAR_DICOM_TLS_CA", "", "PEM CA file: require DICOM TLS clients to present a certificate it signed", false, str(func(c *Config) *string { return &c.DICOMTLSCA })},
	{"duplicate-policy", "MOLAR_DUPLICATE_POLICY", "keep-first", "a different object under a stored SOP Instance UID: keep-first | overwrite | overwrite-same-source", false, str(func(c *Config) *string { return &c.DuplicatePolicy })},
	{"data-dir", "MOLAR_DATA_DIR", "./data", "data directory (embedded PostgreSQL cluster, filesystem objects, temp files)", false, str(func(c *Config) *string { return &c.DataDir })},
	{"database-url", "MOLAR_DATABASE_URL", "", "PostgreSQL URL used for migrations (schema owner); empty = embedded cluster under the data dir", true, str(func(c *Config) *string { return &c.DatabaseURL })},
	{"database-app-url", "MOLAR_DATABASE_APP_URL", "", "PostgreSQL URL logging in as the runtime role molar_app; empty = database-url with SET ROLE molar_app", true, str(func(c *Config) *string { return &c.DatabaseAppURL })},
	{"postgres-bin-dir", "MOLAR_POSTGRES_BIN_DIR", "", "PostgreSQL server binaries for the embedded cluster; empty = search PATH and /usr/lib/postgresql/*/bin", false, str(func(c *Config) *string { return &c.PostgresBinDir })},
	{"s3-endpoint", "MOLAR_S3_ENDPOINT", "", "S3 endpoint host:port; empty = filesystem object store under the data dir", false, str(func(c *Config) *string { return &c.S3Endpoint })},
	{"s3-bucket", "MOLAR_S3_BUCKET", "molar", "S3 bucket (created when missing)", false, str(func(c *Config) *string { return &c.S3Bucket })},
	{"s3-access-key", "MOLAR_S3_ACCESS_KEY", "", "S3 access key", true, str(func(c *Config) *string { return &c.S3AccessKey })},
	{"s3-secret-key", "MOLAR_S3_SECRET_KEY", "", "S3 secret key", true, str(func(c *Config) *string { return &c.S3SecretKey })},
	{"s3-tls", "MOLAR_S3_TLS", "false", "use HTTPS to reach S3", false, boolean(func(c *Config) *bool { return &c.S3TLS })},
	{"s3-region", "MOLAR_S3_REGION", "", "S3 region (optional)", false, str(func(c *Config) *string { return &c.S3Region })},
	{"cors-origins", "MOLAR_CORS_ORIGINS", "", "origins allowed to call DICOMweb from a browser (comma-separated, * = any), e.g. an OHIF deployment", false, str(func(c *Config) *string { return &c.CORSOrigins })},
	{"portal-xrays", "MOLAR_PORTAL_XRAYS", "false", "show families thumbnails of their children's X-rays in the parent portal", false, boolean(func(c *Config) *bool { return &c.PortalXRays })},
	{"oidc-issuer", "MOLAR_OIDC_ISSUER", "", "OpenID Connect issuer URL (MitID broker or staff directory); empty = local logins only", false, str(func(c *Config) *string { return &c.OIDCIssuer })},
	{"oidc-client-id", "MOLAR_OIDC_CLIENT_ID", "", "OpenID Connect client id", false, str(func(c *Config) *string { return &c.OIDCClientID })},
	{"oidc-acr-values", "MOLAR_OIDC_ACR_VALUES", "", "assurance levels a sign-in must have (the ID token's acr; comma-separated), e.g. https://data.gov.dk/concept/core/nsis/loa/Substantial; empty = not checked", false, str(func(c *Config) *string { return &c.OIDCACRValues })},
	{"oidc-client-secret", "MOLAR_OIDC_CLIENT_SECRET", "", "OpenID Connect client secret", true, str(func(c *Config) *string { return &c.OIDCSecret })},
	{"oidc-cpr-claim", "MOLAR_OIDC_CPR_CLAIM", "dk:gov:cpr", "claim carrying a citizen's CPR number", false, str(func(c *Config) *string { return &c.OIDCCPRClaim })},
	{"oidc-role-claim", "MOLAR_OIDC_ROLE_CLAIM", "groups", "claim carrying staff groups", false, str(func(c *Config) *string { return &c.OIDCRoleClaim })},
	{"oidc-role-map", "MOLAR_OIDC_ROLE_MAP", "", "staff group to role mapping, e.g. tandlaeger=dentist,tka=dental_assistant", false, str(func(c *Config) *string { return &c.OIDCRoleMap })},
	{"oidc-unit-map", "MOLAR_OIDC_UNIT_MAP", "", "staff group to unit mapping, e.g. klinik-nord=Tandplejen Nord: at every login membership of the mapped units follows the groups", false, str(func(c *Config) *string { return &c.OIDCUnitMap })},
	{"session-idle", "MOLAR_SESSION_IDLE", "30m", "staff session idle timeout", false, duration(func(c *Config) *time.Duration { return &c.SessionIdle })},
	{"session-citizen-idle", "MOLAR_SESSION_CITIZEN_IDLE", "15m", "citizen (parent portal) session idle timeout", false, duration(func(c *Config) *time.Duration { return &c.CitizenIdle })},
	{"session-max", "MOLAR_SESSION_MAX", "12h", "absolute session lifetime", false, duration(func(c *Config) *time.Duration { return &c.SessionMax })},
	{"lockout-attempts", "MOLAR_LOCKOUT_ATTEMPTS", "3", "failed logins that lock an account", false, integer(func(c *Config) *int { return &c.LockoutAttempts })},
	{"lockout-window", "MOLAR_LOCKOUT_WINDOW", "24h", "window in which failed logins count", false, duration(func(c *Config) *time.Duration { return &c.LockoutWindow })},
	{"shutdown-timeout", "MOLAR_SHUTDOWN_TIMEOUT", "30s", "time in-flight requests and associations get to finish on shutdown", false, duration(func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
	{"log-level", "MOLAR_LOG_LEVEL", "info", "log level: debug | info | warn | error", false, str(func(c *Config) *string { return &c.LogLevel })},
	{"log-format", "MOLAR_LOG_FORMAT", "json", "log format: json | text", false, str(func(c *Config) *string { return &c.LogFormat })},
	{"demo", "MOLAR_DEMO", "false", "seed the demo municipality when the database is empty", false, boolean(func(c *Config) *bool { return &c.Demo })},
	{"smtp-addr", "MOLAR_SMTP_ADDR", "", "SMTP server host:port for booking confirmations and reminders; empty = e-mail off", false, str(func(c *Config) *string { return &c.SMTPAddr })},
	{"smtp-from", "MOLAR_SMTP_FROM", "Molar <noreply@localhost>", "sender of booking e-mails", false, str(func(c *Config) *string { return &c.SMTPFrom })},
	{"smtp-user", "MOLAR_SMTP_USER", "", "SMTP user (PLAIN over TLS)", false, str(func(c *Config) *string { return &c.SMTPUser })},
	{"smtp-password", "MOLAR_SMTP_PASSWORD", "", "SMTP password", true, str(func(c *Config) *string { return &c.SMTPPassword })},
	{"smtp-tls", "MOLAR_SMTP_TLS", "starttls", "SMTP TLS: starttls (when offered) | require | tls (port 465) | off", false, str(func(c *Config) *string { return &c.SMTPTLS })},
	{"sms-url", "MOLAR_SMS_URL", "", "SMS gateway URL (POST JSON {to, text}); empty = SMS off", false, str(func(c *Config) *string { return &c.SMSURL })},
	{"sms-token", "MOLAR_SMS_TOKEN", "", "SMS gateway bearer token", true, str(func(c *Config) *string { return &c.SMSToken })},
}

// ConfigError names the bad setting.
type ConfigError struct {
	Setting string // "MOLAR_HTTP_ADDR (--http-addr)"
	Msg     string
}

func (e *ConfigError) Error() string { return "invalid setting " + e.Setting + ": " + e.Msg }

func settingName(s setting) string { return fmt.Sprintf("%s (--%s)", s.env, s.flag) }

// parseConfig reads defaults, then the environment (NAME, or NAME_FILE for
// secrets), then flags. The returned FlagSet holds the remaining arguments.
func parseConfig(cmd string, args []string, getenv func(string) string, out io.Writer, only map[string]bool) (*Config, *flag.FlagSet, error) {
	return parseConfigWith("serve", cmd, args, getenv, out, only, nil)
}

// flagSet is where commands declare their own flags.
type flagSet = *flag.FlagSet

// parseConfigWith is parseConfig plus command-specific flags.
func parseConfigWith(_ string, cmd string, args []string, getenv func(string) string, out io.Writer, only map[string]bool, addFlags func(flagSet)) (*Config, *flag.FlagSet, error) {
	c := &Config{}
	fs := flag.NewFlagSet("molar "+cmd, flag.ContinueOnError)
	if addFlags != nil {
		addFlags(fs)
	}
	fs.SetOutput(out)
	values := map[string]*string{}
	for _, s := range settings {
		if only != nil && !only[s.flag] {
			continue
		}
		v := s.def
		if e := getenv(s.env); e != "" {
			v = e
		} else if s.secret {
			if f := getenv(s.env + "_FILE"); f != "" {
				b, err := os.ReadFile(f)
				if err != nil {
					return nil, nil, &ConfigError{s.env + "_FILE", fmt.Sprintf("cannot read %s: %v", f, errors.Unwrap(err))}
				}
				v = strings.TrimRight(string(b), "\r\n")
			}
		}
		sv := &settingValue{v: v, isBool: s.def == "true" || s.def == "false"}
		fs.Var(sv, s.flag, s.help)
		values[s.flag] = &sv.v
	}
	fs.Usage = func() {
		usage(out, cmd, only)
		if addFlags != nil {
			fmt.Fprintln(out, "\nCommand flags:")
			own := flag.NewFlagSet(cmd, flag.ContinueOnError)
			addFlags(own)
			own.SetOutput(out)
			own.PrintDefaults()
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, err
		}
		return nil, nil, usageError{err} // an unknown flag, a flag without its value: exit 2
	}
	for _, s := range settings {
		p, ok := values[s.flag]
		if !ok {
			if err := s.set(c, s.def); err != nil {
				return nil, nil, &ConfigError{settingName(s), err.Error()}
			}
			continue
		}
		if err := s.set(c, *p); err != nil {
			return nil, nil, &ConfigError{settingName(s), err.Error()}
		}
	}
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	return c, fs, nil
}

func usage(w io.Writer, cmd string, only map[string]bool) {
	fmt.Fprintf(w, "Usage: molar %s [flags]\n\nEvery flag can also be set by its environment variable; secrets also from NAME_FILE.\n\n", cmd)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FLAG\tENVIRONMENT\tDEFAULT\tMEANING")
	for _, s := range settings {
		if only != nil && !only[s.flag] {
			continue
		}
		def := s.def
		if def == "" {
			def = `""`
		}
		env := s.env
		if s.secret {
			env += " / " + s.env + "_FILE"
		}
		fmt.Fprintf(tw, "--%s\t%s\t%s\t%s\n", s.flag, env, def, s.help)
	}
	tw.Flush()
}

// Validate checks the settings together and names the first bad one.
func (c *Config) Validate() error {
	bad := func(env, msg string) error {
		for _, s := range settings {
			if s.env == env {
				return &ConfigError{settingName(s), msg}
			}
		}
		return &ConfigError{env, msg}
	}
	for _, a := range []struct{ env, v string }{{"MOLAR_HTTP_ADDR", c.HTTPAddr}, {"MOLAR_DICOM_ADDR", c.DICOMAddr}} {
		if _, port, err := net.SplitHostPort(a.v); err != nil {
			return bad(a.env, fmt.Sprintf("want host:port, got %q", a.v))
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return bad(a.env, fmt.Sprintf("port %q is not a number from 0 to 65535", port))
		}
	}
	if l := len(c.AETitle); l == 0 || l > 16 || strings.TrimSpace(c.AETitle) != c.AETitle || strings.ContainsAny(c.AETitle, "\\\x00\n\r\t") {
		return bad("MOLAR_AE_TITLE", "want 1 to 16 characters without backslash, control characters or surrounding spaces")
	}
	if (c.DICOMTLSCert == "") != (c.DICOMTLSKey == "") {
		return bad("MOLAR_DICOM_TLS_CERT", "DICOM TLS needs both a certificate (MOLAR_DICOM_TLS_CERT) and a key (MOLAR_DICOM_TLS_KEY)")
	}
	if c.DICOMTLSCA != "" && c.DICOMTLSCert == "" {
		return bad("MOLAR_DICOM_TLS_CA", "client certificates need DICOM TLS (MOLAR_DICOM_TLS_CERT and MOLAR_DICOM_TLS_KEY)")
	}
	switch c.DuplicatePolicy {
	case "keep-first", "overwrite", "overwrite-same-source":
	default:
		return bad("MOLAR_DUPLICATE_POLICY", fmt.Sprintf("want keep-first, overwrite or overwrite-same-source, got %q", c.DuplicatePolicy))
	}
	if c.DataDir == "" {
		return bad("MOLAR_DATA_DIR", "must not be empty")
	}
	for _, u := range []struct{ env, v string }{{"MOLAR_DATABASE_URL", c.DatabaseURL}, {"MOLAR_DATABASE_APP_URL", c.DatabaseAppURL}} {
		if u.v == "" {
			continue
		}
		p, err := url.Parse(u.v)
		if err != nil || (p.Scheme != "postgres" && p.Scheme != "postgresql") {
			return bad(u.env, "want a URL such as postgres://user:password@host:5432/molar")
		}
	}
	if c.DatabaseAppURL != "" && c.DatabaseURL == "" {
		return bad("MOLAR_DATABASE_APP_URL", "needs MOLAR_DATABASE_URL too")
	}
	if c.S3Endpoint != "" {
		if strings.Contains(c.S3Endpoint, "://") {
			return bad("MOLAR_S3_ENDPOINT", "want host:port without a scheme (use MOLAR_S3_TLS for https)")
		}
		if c.S3AccessKey == "" || c.S3SecretKey == "" {
			return bad("MOLAR_S3_ACCESS_KEY", "S3 needs an access key and a secret key (MOLAR_S3_SECRET_KEY or MOLAR_S3_SECRET_KEY_FILE)")
		}
		if c.S3Bucket == "" {
			return bad("MOLAR_S3_BUCKET", "must not be empty")
		}
	}
	if c.PublicURL != "" {
		p, err := url.Parse(c.PublicURL)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return bad("MOLAR_PUBLIC_URL", "want an http(s) URL such as https://molar.kommune.dk")
		}
	}
	if c.OIDCIssuer != "" {
		p, err := url.Parse(c.OIDCIssuer)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return bad("MOLAR_OIDC_ISSUER", "want an http(s) URL")
		}
		if c.OIDCClientID == "" {
			return bad("MOLAR_OIDC_CLIENT_ID", "required when MOLAR_OIDC_ISSUER is set")
		}
	}
	if _, err := parsePairs(c.OIDCUnitMap, "group=unit name"); err != nil {
		return bad("MOLAR_OIDC_UNIT_MAP", err.Error())
	}
	if _, err := parseRoleMap(c.OIDCRoleMap); err != nil {
		return bad("MOLAR_OIDC_ROLE_MAP", err.Error())
	}
	switch c.SMTPTLS {
	case "starttls", "require", "tls", "off":
	default:
		return bad("MOLAR_SMTP_TLS", fmt.Sprintf("want starttls, require, tls or off, got %q", c.SMTPTLS))
	}
	if c.SMTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.SMTPAddr); err != nil {
			return bad("MOLAR_SMTP_ADDR", fmt.Sprintf("want host:port, got %q", c.SMTPAddr))
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return bad("MOLAR_LOG_LEVEL", fmt.Sprintf("want debug, info, warn or error, got %q", c.LogLevel))
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		return bad("MOLAR_LOG_FORMAT", fmt.Sprintf("want json or text, got %q", c.LogFormat))
	}
	return nil
}

// parseRoleMap parses "group=role,group2=role2".
func parseRoleMap(s string) (map[string]string, error) {
	return parsePairs(s, "group=role")
}

// parsePairs reads "key=value" pairs separated by commas (what names the
// shape of a pair in the error).
func parsePairs(s, what string) (map[string]string, error) {
	m := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return m, nil
	}
	for _, pair := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("want %s pairs separated by commas, got %q", what, pair)
		}
		m[k] = v
	}
	return m, nil
}

// publicURL is the URL users reach the server at.
func (c *Config) publicURL() string {
	if c.PublicURL != "" {
		return strings.TrimSuffix(c.PublicURL, "/")
	}
	// A wildcard listen address (":8080", "0.0.0.0:8080") is not a
	// place to send a browser (OIDC redirects, links in mails): localhost
	// is; set MOLAR_PUBLIC_URL for anything reached from elsewhere.
	host, port, err := net.SplitHostPort(c.HTTPAddr)
	if err != nil {
		return "http://" + c.HTTPAddr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// sortedEnv lists the environment variable names (for docs tests).
func sortedEnv() []string {
	var out []string
	for _, s := range settings {
		out = append(out, s.env)
	}
	sort.Strings(out)
	return out
}

// settingValue is a flag holding a setting's text; boolean settings may be
// given as a bare --flag.
type settingValue struct {
	v      string
	isBool bool
}

func (s *settingValue) String() string     { return s.v }
func (s *settingValue) Set(v string) error { s.v = v; return nil }
func (s *settingValue) IsBoolFlag() bool   { return s.isBool }

// commaList splits a comma-separated setting, spaces trimmed and empty
// items left out.
func commaList(list string) []string {
	var out []string
	for _, v := range strings.Split(list, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
