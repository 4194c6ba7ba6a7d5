// Command reveal-token-keys is the Lambda function of POST /api/token/batch/keys: the full keys of up to 100 of the caller's tokens, counted as one reveal.
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
		fmt.Fprintln(os.Stderr, "reveal-token-keys:", err)
		os.Exit(1)
	}
}

func run() error {
	a, err := app.New(app.Options{KMS: kmsseal.New})
	if err != nil {
		return err
	}
	api.Start(api.RevealKeys(a.Keys, a.Config.RevealsPerMinute, a.Clock))
	return nil
}
