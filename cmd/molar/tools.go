//go:build tools

// This file pins modules that the code base is about to use, so that `go mod
// tidy` keeps them while packages are being written.
package main

import (
	_ "github.com/alexedwards/argon2id"
	_ "github.com/coreos/go-oidc/v3/oidc"
	_ "github.com/disintegration/imaging"
	_ "github.com/go-chi/chi/v5"
	_ "github.com/jackc/pgx/v5"
	_ "github.com/minio/minio-go/v7"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/riverqueue/river"
	_ "github.com/riverqueue/river/riverdriver/riverpgxv5"
	_ "github.com/schollz/progressbar/v3"
	_ "github.com/stretchr/testify/require"
	_ "github.com/suyashkumar/dicom"
	_ "github.com/zitadel/oidc/v3/pkg/op"
	_ "golang.org/x/oauth2"
)
