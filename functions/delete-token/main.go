// Command delete-token is the Lambda function of DELETE /api/token/{id}: delete one token of the caller.
package main

import (
	"fmt"
	"os"

	"github.com/llmgw/token-service/internal/api"
	"github.com/llmgw/token-service/internal/app"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "delete-token:", err)
		os.Exit(1)
	}
}

func run() error {
	a, err := app.New(app.Options{})
	if err != nil {
		return err
	}
	api.Start(api.DeleteToken(a.Tokens))
	return nil
}
