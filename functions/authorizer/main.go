// Command authorizer is the Lambda REQUEST authorizer of the HTTP API
// (payload 2.0, simple responses): it checks the bearer user access token.
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/llmgw/token-service/internal/app"
	"github.com/llmgw/token-service/internal/authorizer"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "authorizer:", err)
		os.Exit(1)
	}
}

func run() error {
	a, err := app.New(app.Options{})
	if err != nil {
		return err
	}
	lambda.Start(authorizer.New(a.AccessTokens, authorizer.AcceptLegacyAccessTokens(a.Config.AcceptLegacyAccessTokens)).Handle)
	return nil
}
