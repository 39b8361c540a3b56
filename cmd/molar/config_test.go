package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigDefaults(t *testing.T) {
	cfg, _, err := parseConfig("serve", nil, envOf(nil), &bytes.Buffer{}, nil)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8080", cfg.HTTPAddr)
	require.Equal(t, "127.0.0.1:11112", cfg.DICOMAddr)
	require.Equal(t, "MOLAR", cfg.AETitle)
	require.Equal(t, "./data", cfg.DataDir)
	require.Empty(t, cfg.DatabaseURL)
	require.Empty(t, cfg.S3Endpoint)
	require.False(t, cfg.AcceptUnknownAE)
	require.Equal(t, 3, cfg.LockoutAttempts)
}

func TestConfigPrecedenceAndSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "s3secret")
	require.NoError(t, os.WriteFile(secret, []byte("from-file\n"), 0o600))
	env := map[string]string{
		"MOLAR_HTTP_ADDR":          "127.0.0.1:9000",
		"MOLAR_AE_TITLE":           "ENVAE",
		"MOLAR_S3_ENDPOINT":        "127.0.0.1:9999",
		"MOLAR_S3_ACCESS_KEY":      "key",
		"MOLAR_S3_SECRET_KEY_FILE": secret,
		"MOLAR_DEMO":               "true",
	}
	cfg, _, err := parseConfig("serve", []string{"--ae-title", "FLAGAE", "--dicom-accept-unknown"}, envOf(env), &bytes.Buffer{}, nil)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9000", cfg.HTTPAddr, "environment over default")
	require.Equal(t, "FLAGAE", cfg.AETitle, "flag over environment")
	require.Equal(t, "from-file", cfg.S3SecretKey, "secret from NAME_FILE, newline trimmed")
	require.True(t, cfg.Demo)
	require.True(t, cfg.AcceptUnknownAE, "a bare boolean flag means true")
}

func TestConfigValidationNamesTheSetting(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"http addr", map[string]string{"MOLAR_HTTP_ADDR": "localhost"}, nil, "MOLAR_HTTP_ADDR"},
		{"dicom port", nil, []string{"--dicom-addr", "127.0.0.1:99999"}, "MOLAR_DICOM_ADDR"},
		{"ae title", map[string]string{"MOLAR_AE_TITLE": "MUCH_TOO_LONG_AE_TITLE"}, nil, "MOLAR_AE_TITLE"},
		{"duplicate policy", map[string]string{"MOLAR_DUPLICATE_POLICY": "maybe"}, nil, "MOLAR_DUPLICATE_POLICY"},
		{"database url", map[string]string{"MOLAR_DATABASE_URL": "mysql://x"}, nil, "MOLAR_DATABASE_URL"},
		{"app url alone", map[string]string{"MOLAR_DATABASE_APP_URL": "postgres://x/y"}, nil, "MOLAR_DATABASE_APP_URL"},
		{"s3 scheme", map[string]string{"MOLAR_S3_ENDPOINT": "http://s3:9000", "MOLAR_S3_ACCESS_KEY": "a", "MOLAR_S3_SECRET_KEY": "b"}, nil, "MOLAR_S3_ENDPOINT"},
		{"s3 without keys", map[string]string{"MOLAR_S3_ENDPOINT": "s3:9000"}, nil, "MOLAR_S3_ACCESS_KEY"},
		{"boolean", map[string]string{"MOLAR_S3_TLS": "yes please"}, nil, "MOLAR_S3_TLS"},
		{"duration", map[string]string{"MOLAR_SESSION_IDLE": "forever"}, nil, "MOLAR_SESSION_IDLE"},
		{"lockout", map[string]string{"MOLAR_LOCKOUT_ATTEMPTS": "0"}, nil, "MOLAR_LOCKOUT_ATTEMPTS"},
		{"oidc client", map[string]string{"MOLAR_OIDC_ISSUER": "https://idp.example"}, nil, "MOLAR_OIDC_CLIENT_ID"},
		{"role map", map[string]string{"MOLAR_OIDC_ROLE_MAP": "dentist"}, nil, "MOLAR_OIDC_ROLE_MAP"},
		{"unit map", map[string]string{"MOLAR_OIDC_UNIT_MAP": "klinik-nord=Tandplejen Nord, =Syd"}, nil, "MOLAR_OIDC_UNIT_MAP"},
		{"log level", map[string]string{"MOLAR_LOG_LEVEL": "loud"}, nil, "MOLAR_LOG_LEVEL"},
		{"public url", map[string]string{"MOLAR_PUBLIC_URL": "molar.kommune.dk"}, nil, "MOLAR_PUBLIC_URL"},
		{"unreadable secret file", map[string]string{"MOLAR_S3_SECRET_KEY_FILE": "/nonexistent/secret"}, nil, "MOLAR_S3_SECRET_KEY_FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseConfig("serve", tc.args, envOf(tc.env), &bytes.Buffer{}, nil)
			require.Error(t, err)
			var ce *ConfigError
			require.True(t, errors.As(err, &ce), "%T %v", err, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestHelpListsEverySettingWithDefaults(t *testing.T) {
	var out bytes.Buffer
	code := run(t.Context(), []string{"serve", "--help"}, envOf(nil), &out, &out)
	require.Equal(t, 0, code)
	for _, env := range sortedEnv() {
		require.Contains(t, out.String(), env)
	}
	require.Contains(t, out.String(), "127.0.0.1:8080")
	require.Contains(t, out.String(), "MOLAR_S3_SECRET_KEY_FILE")
}

func TestREADMEDocumentsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	for _, env := range sortedEnv() {
		require.True(t, strings.Contains(string(b), "`"+env+"`"), "README configuration table lacks %s", env)
	}
}

func TestUnknownCommand(t *testing.T) {
	var out, errb bytes.Buffer
	require.Equal(t, 2, run(t.Context(), []string{"frobnicate"}, envOf(nil), &out, &errb))
	require.Contains(t, errb.String(), "unknown command")
}

func TestPublicURLDefault(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.1:8080", "http://127.0.0.1:8080"},
		{":8080", "http://localhost:8080"},
		{"0.0.0.0:8080", "http://localhost:8080"},
		{"[::]:8080", "http://localhost:8080"},
		{"[::1]:8080", "http://[::1]:8080"},
		{"molar.local:80", "http://molar.local:80"},
	} {
		require.Equal(t, tc.want, (&Config{HTTPAddr: tc.addr}).publicURL(), tc.addr)
	}
	require.Equal(t, "https://molar.example.dk", (&Config{HTTPAddr: ":8080", PublicURL: "https://molar.example.dk/"}).publicURL())
}

// Command-line mistakes exit 2 (usage), before any database is touched;
// --help exits 0.
func TestCommandLineMistakesExit2(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"ae", "list", "--bogus"}, 2},
		{[]string{"serve", "--http-addr"}, 2},
		{[]string{"user", "add", "--no-such-flag=1"}, 2},
		{[]string{"ae", "list", "--help"}, 0},
	} {
		var out, errb bytes.Buffer
		env := map[string]string{"MOLAR_DATA_DIR": filepath.Join(t.TempDir(), "none")}
		require.Equal(t, tc.code, run(context.Background(), tc.args, envOf(env), &out, &errb), "%v: %s", tc.args, errb.String())
	}
}

func TestDICOMPendingPerHostSetting(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want int
		ok   bool
	}{{"", 8, true}, {"0", 0, true}, {"3", 3, true}, {"-1", 0, false}, {"x", 0, false}} {
		env := map[string]string{}
		if tc.v != "" {
			env["MOLAR_DICOM_PENDING_PER_HOST"] = tc.v
		}
		cfg, _, err := parseConfig("serve", nil, envOf(env), io.Discard, nil)
		if !tc.ok {
			require.Error(t, err, tc.v)
			require.Contains(t, err.Error(), "MOLAR_DICOM_PENDING_PER_HOST")
			continue
		}
		require.NoError(t, err, tc.v)
		require.Equal(t, tc.want, cfg.DICOMPendingPerHost, tc.v)
	}
}
