// Command verify-token is the Lambda function the relay invokes directly
// (Lambda Invoke, IAM) to verify a key and consume, settle or refund quota.
package main

import (
	"context"
	"fmt"
	"os"

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
	a, err := app.New(context.Background(), app.Options{})
	if err != nil {
		return err
	}
	// The mapping cache lives as long as the container: built once, here.
	app.StartInvoke(verify.NewInvoker(verify.New(a.Store, verify.DefaultCacheSize), a.Clock))
	return nil
}
