// Command get-token is the Lambda function of GET /api/token/{id}: one token of the caller.
package main

import (
	"fmt"
	"os"

	"github.com/llmgw/token-service/internal/api"
	"github.com/llmgw/token-service/internal/app"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "get-token:", err)
		os.Exit(1)
	}
}

func run() error {
	a, err := app.New(app.Options{})
	if err != nil {
		return err
	}
	api.Start(api.GetToken(a.Tokens, a.Clock, api.BudgetZone(a.Config.BudgetZone())))
	return nil
}
