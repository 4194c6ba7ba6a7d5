// Command rotate-token is the Lambda function of POST /api/token/{id}/rotate: a new key for one of the caller's tokens, the old one kept for an optional grace window.
package main

import (
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
	a, err := app.New(app.Options{KMS: kmsseal.New})
	if err != nil {
		return err
	}
	api.Start(api.RotateToken(a.Keys, a.Clock, api.BudgetZone(a.Config.BudgetZone())))
	return nil
}
