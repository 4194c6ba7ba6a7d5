// Command verify-token is the Lambda function the relay invokes directly
// (Lambda Invoke, IAM) to verify a key and consume, settle or refund quota.
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/llmgw/token-service/internal/app"
	"github.com/llmgw/token-service/internal/verify"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "verify-token:", err)
		os.Exit(1)
	}
}

func run() error {
	a, err := app.New(app.Options{})
	if err != nil {
		return err
	}
	// The mapping cache lives as long as the container: built once, here.
	lambda.Start(verify.NewInvoker(verify.New(a.Ledger, verify.DefaultCacheSize), a.Clock))
	return nil
}
