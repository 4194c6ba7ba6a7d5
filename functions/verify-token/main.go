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
	lifetime, err := verify.RecordLifetimeFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	v := verify.New(a.Ledger, verify.DefaultCacheSize).AcceptLegacyKeys(a.Config.AcceptLegacyKeys).RecordLifetime(lifetime).
		BudgetZone(a.Config.BudgetZone())
	lambda.Start(verify.NewInvoker(v, a.Clock))
	return nil
}
