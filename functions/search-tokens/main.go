// Command search-tokens is the Lambda function of GET /api/token/search: the caller's tokens by name keyword and key.
package main

import (
	"fmt"
	"os"

	"github.com/llmgw/token-service/internal/api"
	"github.com/llmgw/token-service/internal/app"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "search-tokens:", err)
		os.Exit(1)
	}
}

func run() error {
	a, err := app.New(app.Options{})
	if err != nil {
		return err
	}
	api.Start(api.SearchTokens(a.Tokens, a.Clock, api.AcceptLegacyKeys(a.Config.AcceptLegacyKeys),
		api.BudgetZone(a.Config.BudgetZone())))
	return nil
}
