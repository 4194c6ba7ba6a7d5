// Command console is the Lambda function of GET / and GET /assets/{proxy+}:
// the Tokens web console, its files embedded in the binary. It reads no
// table and holds no secret, so its routes need no authorizer: the page
// signs in with the user's access token, which it sends only to /api.
package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/llmgw/token-service/internal/app"
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
	level := slog.LevelInfo
	if s := os.Getenv("LOG_LEVEL"); s != "" {
		if err := level.UnmarshalText([]byte(s)); err != nil {
			return fmt.Errorf("config: LOG_LEVEL must be DEBUG, INFO, WARN or ERROR, got %q", s)
		}
	}
	app.SetLogger(level)
	app.StartHTTP(console.New(web.Console()))
	return nil
}
