// Command usage-token is the Lambda function of GET /api/usage/token: a
// key's usage in new-api's shape, authenticated by the key itself
// (Authorization: Bearer sk-...), so its route has no authorizer.
package main

import (
	"fmt"
	"os"

	"github.com/llmgw/token-service/internal/api"
	"github.com/llmgw/token-service/internal/app"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "usage-token:", err)
		os.Exit(1)
	}
}

func run() error {
	a, err := app.New(app.Options{})
	if err != nil {
		return err
	}
	api.Start(api.UsageToken(a.Tokens, a.Clock, api.AcceptLegacyKeys(a.Config.AcceptLegacyKeys),
		api.BudgetZone(a.Config.BudgetZone())))
	return nil
}
