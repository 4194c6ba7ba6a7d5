// Command bench measures the token service and writes bench/RESULTS.md and
// bench/results.json: DynamoDB requests and consumed capacity per call of
// every endpoint and of verify (counted by an SDK middleware), in-process
// latency and allocations, latency through the local runner over HTTP under
// concurrency, binary sizes and init durations, and a cost table per
// million calls in AWS. `make bench` runs it; its test runs it with tiny
// counts.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	out          string
	template     string
	root         string
	dynamoDB     string
	tokenCounts  []int
	calls        int
	warmup       int
	httpRequests int
	httpTime     time.Duration
	concurrency  []int
	coldRuns     int
	functions    []string
	skipHTTP     bool
	skipCold     bool
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.out, "out", "bench", "folder for RESULTS.md and results.json")
	fs.StringVar(&o.template, "template", "template.yaml", "the SAM template")
	fs.StringVar(&o.root, "root", ".", "the module root (where go build runs)")
	fs.StringVar(&o.dynamoDB, "dynamodb-endpoint", os.Getenv("DYNAMODB_TEST_ENDPOINT"), "DynamoDB Local to use (default: env DYNAMODB_TEST_ENDPOINT, else start one on a free port)")
	tokens := fs.String("tokens", "10,100,1000", "the user's token counts to measure at")
	fs.IntVar(&o.calls, "calls", 100, "measured in-process calls per endpoint and token count")
	fs.IntVar(&o.warmup, "warmup", 20, "unmeasured in-process calls before each measure")
	fs.IntVar(&o.httpRequests, "http-requests", 500, "requests per endpoint and concurrency through the local runner")
	fs.DurationVar(&o.httpTime, "http-time", 20*time.Second, "longest run per endpoint and concurrency through the local runner")
	conc := fs.String("concurrency", "4,16", "concurrent clients through the local runner")
	fs.IntVar(&o.coldRuns, "cold-runs", 5, "fresh instances per function for init durations (the median is reported)")
	fns := fs.String("functions", "", "comma-separated logical ids for sizes and init durations (default: every function)")
	fs.BoolVar(&o.skipHTTP, "skip-http", false, "skip the local runner load")
	fs.BoolVar(&o.skipCold, "skip-cold", false, "skip binary sizes and init durations")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if o.tokenCounts, err = intList(*tokens); err != nil {
		return o, fmt.Errorf("-tokens: %w", err)
	}
	if o.concurrency, err = intList(*conc); err != nil {
		return o, fmt.Errorf("-concurrency: %w", err)
	}
	if *fns != "" {
		o.functions = strings.Split(*fns, ",")
	}
	if o.calls < 1 || o.coldRuns < 1 || o.httpRequests < 1 {
		return o, errors.New("-calls, -cold-runs and -http-requests must be positive")
	}
	return o, nil
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	// The handlers' access lines are formatted as in Lambda, then dropped.
	slog.SetDefault(slog.New(slog.NewJSONHandler(io.Discard, nil)))
	progress := func(format string, a ...any) { fmt.Fprintf(stderr, "bench: "+format+"\n", a...) }
	start := time.Now()

	e, err := setUp(ctx, o, progress)
	if err != nil {
		return err
	}
	defer e.close()

	res := &Results{Started: start.UTC().Format(time.RFC3339), Machine: describeMachine(ctx, e.ddbVersion)}
	res.Prices = currentPrices
	for _, n := range o.tokenCounts {
		progress("in-process endpoints at %d tokens", n)
		rows, err := e.measureEndpoints(ctx, o, n)
		if err != nil {
			return err
		}
		res.Endpoints = append(res.Endpoints, rows...)
	}
	progress("in-process authorizer and verify")
	if res.Authorizer, err = e.measureAuthorizer(ctx, o); err != nil {
		return err
	}
	if res.Verify, err = e.measureVerify(ctx, o); err != nil {
		return err
	}
	res.LargestItemBytes = e.largestItem
	res.Skipped = e.skipped
	if !o.skipHTTP {
		progress("local runner over HTTP")
		if res.HTTP, err = e.measureHTTP(ctx, o); err != nil {
			return err
		}
	}
	if !o.skipCold {
		progress("binary sizes and init durations")
		if res.Functions, err = e.measureFunctions(ctx, o); err != nil {
			return err
		}
	}
	res.Costs = costs(res, e.memoryMB)
	res.Elapsed = time.Since(start).Round(time.Second).String()
	if err := writeResults(o.out, res); err != nil {
		return err
	}
	printSummary(stdout, res)
	return nil
}
