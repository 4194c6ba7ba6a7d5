// Command rotate-token is the Lambda function of POST /api/token/{id}/rotate: a new key for one of the caller's tokens, the old one kept for an optional grace window.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/llmgw/token-service/internal/api"
	"github.com/llmgw/token-service/internal/app"
	"github.com/llmgw/token-service/internal/seal/kmsseal"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "rotate-token:", err)
		os.Exit(1)
	}
}

func run() error {
	a, err := app.New(context.Background(), app.Options{KMS: kmsseal.New})
	if err != nil {
		return err
	}
	app.StartHTTP(api.RotateToken(a.Store, a.Clock))
	return nil
}
