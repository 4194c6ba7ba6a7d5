// Command console is the Lambda function of GET / and GET /assets/{proxy+}:
// the Tokens web console, its files embedded in the binary. It reads no
// table and holds no secret, so its routes need no authorizer: the page
// signs in with the user's access token, which it sends only to /api.
package main

import (
	"fmt"
	"os"

	"github.com/llmgw/token-service/internal/api"
	"github.com/llmgw/token-service/internal/config"
	"github.com/llmgw/token-service/internal/console"
	"github.com/llmgw/token-service/web"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "console:", err)
		os.Exit(1)
	}
}

func run() error {
	level, err := config.LogLevel(os.Getenv)
	if err != nil {
		return err
	}
	config.SetLogger(level)
	api.Start(console.New(web.Console()))
	return nil
}
