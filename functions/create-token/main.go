// Command create-token is the Lambda function of POST /api/token: create one token or a batch of up to 49.
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
		fmt.Fprintln(os.Stderr, "create-token:", err)
		os.Exit(1)
	}
}

func run() error {
	a, err := app.New(app.Options{KMS: kmsseal.New})
	if err != nil {
		return err
	}
	api.Start(api.CreateTokens(a.Tokens, a.Rules, a.Clock, api.BudgetZone(a.Config.BudgetZone())))
	return nil
}
