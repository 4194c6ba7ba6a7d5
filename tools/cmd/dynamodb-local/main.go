// Command dynamodb-local runs Amazon's DynamoDB Local for development and
// tests.
//
//	go run ./cmd/dynamodb-local [-port 8000] [-db-path DIR]
//	go run ./cmd/dynamodb-local [-port N] [-db-path DIR] -- command args...
//
// Without a command it runs in the foreground, prints the endpoint and stops
// on SIGINT or SIGTERM. With a command it starts DynamoDB Local (on a free
// port unless -port is given), runs the command with DYNAMODB_TEST_ENDPOINT
// and AWS_ENDPOINT_URL_DYNAMODB set to the endpoint, always stops DynamoDB
// Local afterwards, and exits with the command's exit code. `make test` runs
// `go run ./cmd/dynamodb-local -- go test -count=1 ./...`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/llmgw/token-service/tools/ddblocal"
)

func main() {
	code, err := run(os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dynamodb-local:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func run(args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("dynamodb-local", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", 0, "TCP port (default 8000 without a command, a free port with one)")
	dbPath := fs.String("db-path", "", "keep the data in this folder instead of in memory")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: dynamodb-local [-port N] [-db-path DIR] [-- command args...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2, nil
	}
	command := fs.Args()
	if *port < 0 || *port > 65535 {
		return 2, fmt.Errorf("-port %d is not a TCP port", *port)
	}
	if len(command) == 0 && *port == 0 {
		*port = 8000
	}

	// Catch signals before starting anything, so that none of them can skip
	// the Stop below.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	opts := ddblocal.Options{Port: *port, DBPath: *dbPath}
	if len(command) == 0 {
		opts.Output = stderr
	}
	inst, err := ddblocal.Start(context.Background(), opts)
	if err != nil {
		return 1, err
	}
	defer inst.Stop()

	if len(command) == 0 {
		fmt.Fprintln(stdout, inst.Endpoint())
		select {
		case <-sigs:
			return 0, nil
		case <-inst.Done():
			return 1, errors.New("DynamoDB Local exited")
		}
	}
	return runCommand(command, inst.Endpoint(), sigs)
}

// runCommand runs command with the endpoint in its environment, passes on the
// signals this process receives, and returns its exit code.
func runCommand(command []string, endpoint string, sigs <-chan os.Signal) (int, error) {
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(),
		"DYNAMODB_TEST_ENDPOINT="+endpoint,
		"AWS_ENDPOINT_URL_DYNAMODB="+endpoint,
	)
	if err := cmd.Start(); err != nil {
		return 1, fmt.Errorf("run %s: %w", command[0], err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-sigs:
			// A terminal's Ctrl-C reaches the command too; a SIGTERM sent
			// to this process alone does not, so pass every signal on.
			_ = cmd.Process.Signal(sig)
		case err := <-done:
			var exit *exec.ExitError
			switch {
			case err == nil:
				return 0, nil
			case errors.As(err, &exit):
				if code := exit.ExitCode(); code > 0 {
					return code, nil
				}
				return 1, fmt.Errorf("%s: %v", command[0], err) // killed by a signal
			default:
				return 1, fmt.Errorf("%s: %w", command[0], err)
			}
		}
	}
}
