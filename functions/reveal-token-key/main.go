// Command reveal-token-key is the Lambda function of POST /api/token/{id}/key: the full key of one of the caller's tokens, within the per-user reveal limit.
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
		fmt.Fprintln(os.Stderr, "reveal-token-key:", err)
		os.Exit(1)
	}
}

func run() error {
	a, err := app.New(app.Options{KMS: kmsseal.New})
	if err != nil {
		return err
	}
	api.Start(api.RevealKey(a.Keys, a.Config.RevealsPerMinute, a.Clock))
	return nil
}
