// Command update-token is the Lambda function of PUT /api/token: partial update of one token, or its status only.
package main

import (
	"fmt"
	"os"

	"github.com/llmgw/token-service/internal/api"
	"github.com/llmgw/token-service/internal/app"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "update-token:", err)
		os.Exit(1)
	}
}

func run() error {
	a, err := app.New(app.Options{})
	if err != nil {
		return err
	}
	api.Start(api.UpdateToken(a.Tokens, a.Rules, a.Clock, api.BudgetZone(a.Config.BudgetZone())))
	return nil
}
