// Command list-tokens is the Lambda function of GET /api/token: the caller's tokens, newest first, paginated.
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
		fmt.Fprintln(os.Stderr, "list-tokens:", err)
		os.Exit(1)
	}
}

func run() error {
	a, err := app.New(context.Background(), app.Options{})
	if err != nil {
		return err
	}
	app.StartHTTP(api.ListTokens(a.Store, a.Clock))
	return nil
}
