// Command batch-delete-tokens is the Lambda function of POST /api/token/batch: delete up to 100 tokens of the caller.
package main

import (
	"context"
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
	a, err := app.New(context.Background(), app.Options{})
	if err != nil {
		return err
	}
	app.StartHTTP(api.BatchDeleteTokens(a.Store))
	return nil
}
