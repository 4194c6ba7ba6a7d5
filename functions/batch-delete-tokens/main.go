// Command batch-delete-tokens is the Lambda function of POST /api/token/batch: delete up to 100 tokens of the caller.
package main

import (
	"fmt"
	"os"

	"github.com/llmgw/token-service/internal/api"
	"github.com/llmgw/token-service/internal/app"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "batch-delete-tokens:", err)
		os.Exit(1)
	}
}

func run() error {
	a, err := app.New(app.Options{})
	if err != nil {
		return err
	}
	api.Start(api.BatchDeleteTokens(a.Tokens))
	return nil
}
