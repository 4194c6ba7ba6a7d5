package e2e_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/llmgw/token-service/tools/ddblocal"
	"github.com/llmgw/token-service/tools/stacktest"
)

func TestMain(m *testing.M) { ddblocal.RunTests(m) }

// TestConsoleBrowser serves the whole stack (every function under the
// local runner, DynamoDB Local), issues a user access token and runs the
// console's browser tests in Debian's chromium through playwright-core.
// `make test-browser` (part of `make test`) runs it with
// CONSOLE_BROWSER_TEST=1 and -v, so node's own summary reaches the output;
// a plain `go test ./...` skips it. Without chromium, node or
// playwright-core it skips, except in CI (CI set), where it fails.
func TestConsoleBrowser(t *testing.T) {
	if os.Getenv("CONSOLE_BROWSER_TEST") == "" {
		t.Skip("browser tests: run `make test-browser` (part of `make test`), or set CONSOLE_BROWSER_TEST=1")
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	var missing []string
	if _, err := os.Stat(chromium); err != nil {
		missing = append(missing, chromium+" (apt-get install chromium)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing = append(missing, "node")
	}
	if _, err := os.Stat(filepath.Join("node_modules", "playwright-core", "package.json")); err != nil {
		missing = append(missing, "playwright-core (npm ci --prefix web/e2e)")
	}
	if len(missing) > 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("browser tests cannot run in CI: missing %v", missing)
		}
		t.Skipf("browser tests skipped: missing %v", missing)
	}

	s := stacktest.Start(t, stacktest.Options{Template: "../../template.yaml"})
	access := s.IssueToken(t, "console-user")
	// The committed screenshot changes only when asked (make screenshot), so
	// a test run leaves the tree as it was.
	screenshot := filepath.Join(t.TempDir(), "screenshot-tokens.png")
	if os.Getenv("UPDATE_SCREENSHOT") != "" {
		var err error
		if screenshot, err = filepath.Abs("../../docs/screenshot-tokens.png"); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=spec", "--test-concurrency=1", "console.test.js")
	cmd.Env = append(os.Environ(),
		"CONSOLE_URL="+s.APIURL,
		"ACCESS_TOKEN="+access,
		"CHROMIUM="+chromium,
		"SCREENSHOT="+screenshot,
	)
	// Straight to the test binary's output: with -v, node's summary lines
	// (tests, pass, fail) reach the terminal and CI.
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Errorf("node --test: %v\nrunner log:\n%s\nfunctions:\n%s", err, s.RunnerLog.String(), s.Output.String())
	}
}
