// Command search-tokens is the Lambda function of GET /api/token/search: the caller's tokens by name keyword and key.
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
		fmt.Fprintln(os.Stderr, "search-tokens:", err)
		os.Exit(1)
	}
}

func run() error {
	a, err := app.New(context.Background(), app.Options{})
	if err != nil {
		return err
	}
	app.StartHTTP(api.SearchTokens(a.Store, a.Clock))
	return nil
}
