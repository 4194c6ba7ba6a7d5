// Command localapi runs the stack of template.yaml on this machine without
// Docker or the SAM CLI: every function under the AWS Lambda Runtime
// Interface Emulator, the table in DynamoDB Local, the HttpApi served as
// API Gateway does, and the functions behind the Lambda Invoke API as
// `sam local start-lambda` serves them (so the AWS SDK's Lambda client can
// invoke e.g. VerifyTokenFunction; any SigV4 signature is accepted).
//
// It enforces the Lambda resource permissions a deployment would have (see
// template.Permission): a route whose function or authorizer API Gateway
// may not invoke answers 500 {"message":"Internal Server Error"}, as in
// AWS, with the reason in the log; the Invoke API acts as one principal
// (-invoke-principal, by default the relay's role: RelayRoleArn, which
// locally defaults to arn:aws:iam::123456789012:role/local-relay) and
// answers 403 AccessDeniedException for a function no permission opens to
// it. invoke, like `sam local invoke`, runs any function. Each function
// gets AWS_SAM_LOCAL=true, and those that seal with KMS in AWS (their
// template environment declares KMS_KEY_ID) an empty KMS_KEY_ID and the
// development SEALING_KEY kept in <local-dir>/sealing-key.
//
//	localapi [start-api] [flags]              serve the API on 127.0.0.1:3000, the Invoke API on 127.0.0.1:3001
//	localapi invoke <LogicalId> -e event.json [flags]   run one event, print the answer
//
// Flags of both: -template, -parameter-overrides 'Key=Value ...',
// -dynamodb-endpoint (or env DYNAMODB_ENDPOINT; default: start DynamoDB
// Local on -dynamodb-port, reusing one that already answers there), -db-path,
// -table, -max-instances, -local-dir, -verbose, -no-iam (each function's
// DynamoDB calls are checked against its template Policies unless given). start-api also takes -addr
// and -port (the HTTP API), -lambda-addr and -lambda-port (the Invoke API;
// -lambda-port off serves none; port 0 of either = a free port) and
// -invoke-principal (who the Invoke API's callers are).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/llmgw/token-service/tools/stack"
	"github.com/llmgw/token-service/tools/template"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "localapi:", err)
		os.Exit(1)
	}
}

// overrides collects -parameter-overrides: "Key=Value Key2=Value2", the
// flag repeatable, as sam's.
type overrides map[string]string

func (o overrides) String() string { return "" }

func (o overrides) Set(s string) error {
	for _, kv := range strings.Fields(s) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("%q: want Key=Value", kv)
		}
		// sam also takes ParameterKey=K,ParameterValue=V.
		if strings.HasPrefix(kv, "ParameterKey=") {
			key, val, ok := strings.Cut(strings.TrimPrefix(kv, "ParameterKey="), ",ParameterValue=")
			if !ok {
				return fmt.Errorf("%q: want ParameterKey=K,ParameterValue=V", kv)
			}
			k, v = key, val
		}
		o[k] = v
	}
	return nil
}

// options are the flags of both commands.
type options struct {
	template     string
	overrides    overrides
	dynamoDB     string
	dynamoPort   int
	dbPath       string
	table        string
	maxInstances int
	localDir     string
	verbose      bool
	noIAM        bool
	// start-api
	addr       string
	port       int
	lambdaAddr string
	lambdaPort string // a port number or "off"
	// invokePrincipal is who the Invoke API acts as; "" = the relay's role.
	invokePrincipal string
	// readTimeout bounds the reading of a request's headers, and of the
	// whole request, on both servers.
	readTimeout time.Duration
	// invoke
	event string
}

func newFlagSet(name string, o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.overrides = overrides{}
	fs.StringVar(&o.template, "template", "template.yaml", "the SAM template")
	fs.Var(o.overrides, "parameter-overrides", "template parameters, 'Key=Value Key2=Value2' (repeatable)")
	fs.StringVar(&o.dynamoDB, "dynamodb-endpoint", os.Getenv("DYNAMODB_ENDPOINT"), "use this DynamoDB endpoint instead of starting DynamoDB Local (env DYNAMODB_ENDPOINT)")
	fs.IntVar(&o.dynamoPort, "dynamodb-port", 8000, "port of the DynamoDB Local to start or reuse (0 = a free port)")
	fs.StringVar(&o.dbPath, "db-path", "", "keep the started DynamoDB Local's data in this folder (default: in memory)")
	fs.StringVar(&o.table, "table", "tokens", "local name of the template's table")
	fs.IntVar(&o.maxInstances, "max-instances", 10, "instances per function; beyond it requests wait, then 429")
	fs.StringVar(&o.localDir, "local-dir", ".local", "folder for builds, the RIE binary and the dev sealing key")
	fs.BoolVar(&o.verbose, "verbose", false, "show the emulator's own log lines")
	fs.BoolVar(&o.noIAM, "no-iam", false, "do not check the functions' DynamoDB calls against their template Policies (debugging only)")
	return fs
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "start-api"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var o options
	switch cmd {
	case "start-api":
		fs := newFlagSet("start-api", &o, stderr)
		fs.StringVar(&o.addr, "addr", "127.0.0.1", "address to listen on")
		fs.IntVar(&o.port, "port", 3000, "port to listen on")
		fs.StringVar(&o.lambdaAddr, "lambda-addr", "127.0.0.1", "address of the Lambda Invoke API")
		fs.StringVar(&o.lambdaPort, "lambda-port", "3001", `port of the Lambda Invoke API ("off": none)`)
		fs.DurationVar(&o.readTimeout, "read-timeout", stack.DefaultServerTimeouts.Read, "time a client has to send a request's headers, and the whole request with its body; a connection that stalls longer is closed")
		fs.StringVar(&o.invokePrincipal, "invoke-principal", "", "IAM principal (role ARN) the Lambda Invoke API's callers act as; it serves only the functions a template permission opens to it (default: the relay's role, RelayRoleArn, locally "+stack.DevRelayRoleARN+")")
		if err := parseFlags(fs, args, &o); err != nil {
			return err
		}
		if _, err := lambdaListenAddr(o); err != nil {
			return err
		}
		return startAPI(ctx, o, stdout, stderr)
	case "invoke":
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			return errors.New("usage: localapi invoke <FunctionLogicalId> -e <event.json>")
		}
		fn := args[0]
		fs := newFlagSet("invoke", &o, stderr)
		fs.StringVar(&o.event, "e", "", "event file (- for stdin)")
		if err := parseFlags(fs, args[1:], &o); err != nil {
			return err
		}
		if o.event == "" {
			return errors.New("invoke: -e <event.json> is required")
		}
		return invoke(ctx, o, fn, stdout, stderr)
	default:
		return fmt.Errorf("unknown command %q (start-api or invoke)", cmd)
	}
}

// parseFlags parses args, taking Key=Value words after the flags as more
// parameter overrides, so that sam's `-parameter-overrides A=1 B=2` works.
func parseFlags(fs *flag.FlagSet, args []string, o *options) error {
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		args = fs.Args()
		if len(args) == 0 {
			return nil
		}
		if !strings.Contains(args[0], "=") {
			return fmt.Errorf("unexpected argument %q", args[0])
		}
		if err := o.overrides.Set(args[0]); err != nil {
			return err
		}
		args = args[1:]
	}
}

// env is what both commands set up: the template, DynamoDB with its table,
// and the built functions.
type env struct {
	tmpl  *template.Stack
	ddb   *stack.DynamoDB
	stack *stack.Stack
}

func (e *env) close() {
	if e.stack != nil {
		e.stack.Close()
	}
	if e.ddb != nil {
		_ = e.ddb.Close()
	}
}

func setUp(ctx context.Context, o options, functions []string, stderr io.Writer) (_ *env, err error) {
	root := filepath.Dir(o.template)
	localDir := o.localDir
	if !filepath.IsAbs(localDir) {
		localDir = filepath.Join(root, localDir)
	}
	params, err := stack.LocalParameters(o.template, o.overrides)
	if err != nil {
		return nil, err
	}
	tmpl, err := template.Load(o.template, template.Options{
		ParameterOverrides: params,
		TableNames:         map[string]string{"TokensTable": o.table},
	})
	if err != nil {
		return nil, err
	}
	e := &env{tmpl: tmpl}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	dbPath := o.dbPath
	if dbPath != "" && !filepath.IsAbs(dbPath) {
		dbPath = filepath.Join(root, dbPath)
	}
	if e.ddb, err = stack.OpenDynamoDB(ctx, stack.DynamoDBOptions{Endpoint: o.dynamoDB, Port: o.dynamoPort, DBPath: dbPath}); err != nil {
		return nil, err
	}
	if err := stack.EnsureTables(ctx, e.ddb.Client(), tmpl); err != nil {
		return nil, err
	}
	e.stack, err = stack.Start(ctx, stack.Config{
		Template:         tmpl,
		Root:             root,
		LocalDir:         localDir,
		DynamoDBEndpoint: e.ddb.Endpoint,
		NoIAM:            o.noIAM,
		Functions:        functions,
		MaxInstances:     o.maxInstances,
		Output:           stderr,
		Verbose:          o.verbose,
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

func startAPI(ctx context.Context, o options, stdout, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	e, err := setUp(ctx, o, nil, stderr)
	if err != nil {
		return err
	}
	defer e.close()

	ln, err := net.Listen("tcp", net.JoinHostPort(o.addr, strconv.Itoa(o.port)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	timeouts := stack.ServerTimeouts{ReadHeader: o.readTimeout, Read: o.readTimeout}
	servers := []*http.Server{stack.NewHTTPServer(stack.NewAPI(e.tmpl, e.stack.Pools, log), timeouts)}
	listeners := []net.Listener{ln}
	lambdaURL := ""
	if lambdaAddr, _ := lambdaListenAddr(o); lambdaAddr != "" {
		lln, err := net.Listen("tcp", lambdaAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen (Lambda Invoke API): %w", err)
		}
		lambdaURL = "http://" + lln.Addr().String()
		servers = append(servers, stack.NewHTTPServer(
			stack.NewLambdaAPI(e.tmpl, e.stack.Pools.Names(), invokePrincipal(o, e.tmpl), e.stack.Pools, log.With("api", "lambda")),
			timeouts))
		listeners = append(listeners, lln)
	}
	printBanner(stdout, e, "http://"+ln.Addr().String(), lambdaURL, invokePrincipal(o, e.tmpl))

	errc := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { errc <- srv.Serve(listeners[i]) }()
	}
	var serveErr error
	select {
	case err := <-errc:
		serveErr = fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
		fmt.Fprintln(stdout, "\nstopping: functions and DynamoDB Local")
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.Shutdown(shutdownCtx)
	}
	return serveErr
}

// invokePrincipal is who the Lambda Invoke API acts as: -invoke-principal,
// else the relay's role.
func invokePrincipal(o options, t *template.Stack) string {
	if o.invokePrincipal != "" {
		return o.invokePrincipal
	}
	return stack.InvokePrincipal(t)
}

// lambdaListenAddr is where the Lambda Invoke API listens; "" when
// -lambda-port is off.
func lambdaListenAddr(o options) (string, error) {
	if o.lambdaPort == "off" {
		return "", nil
	}
	port, err := strconv.Atoi(o.lambdaPort)
	if err != nil || port < 0 || port > 65535 {
		return "", fmt.Errorf("-lambda-port %q: want a port number (0 = a free one) or off", o.lambdaPort)
	}
	return net.JoinHostPort(o.lambdaAddr, strconv.Itoa(port)), nil
}

func printBanner(w io.Writer, e *env, url, lambdaURL, principal string) {
	fmt.Fprintf(w, "DynamoDB: %s (table %s)\n", e.ddb.Endpoint, tableNames(e.tmpl))
	fmt.Fprintln(w, "Routes:")
	for _, rt := range e.tmpl.Routes {
		auth := rt.Authorizer
		if auth == "" {
			auth = "no authorizer"
		}
		fmt.Fprintf(w, "  %-7s %s%-24s -> %s (%s)\n", rt.Method, url, rt.Path, rt.Function, auth)
	}
	fmt.Fprintf(w, "\nAPI: %s\n", url)
	hint := "make user-token USER=42"
	if e.ddb.Endpoint != "http://127.0.0.1:8000" {
		hint += " DYNAMODB_ENDPOINT=" + e.ddb.Endpoint
	}
	if t := e.tmpl.Tables["TokensTable"]; t != nil && t.Name != "tokens" {
		hint = "TABLE_NAME=" + t.Name + " " + hint
	}
	fmt.Fprintln(w, "Get a user access token (last line):  "+hint)
	fmt.Fprintf(w, "Then:  curl -H \"Authorization: Bearer $TOKEN\" %s/api/token\n", url)
	if lambdaURL != "" {
		var open []string
		for _, id := range e.stack.Pools.Names() {
			if _, ok := e.tmpl.Allowing(id, template.Caller{Principal: principal}); ok {
				open = append(open, id)
			}
		}
		opened := "none: every function answers 403"
		if len(open) > 0 {
			opened = strings.Join(open, ", ")
		}
		fmt.Fprintf(w, "\nLambda Invoke API: %s (functions by logical id; any SigV4 signature accepted)\n", lambdaURL)
		fmt.Fprintf(w, "  callers act as %s; template permissions open to it: %s\n", principal, opened)
		fmt.Fprintf(w, "  aws lambda invoke --endpoint-url %s --function-name VerifyTokenFunction \\\n", lambdaURL)
		fmt.Fprintln(w, `    --cli-binary-format raw-in-base64-out --payload '{"key":"sk-...","consume":1}' /dev/stdout`)
	}
	fmt.Fprintln(w, "\nCtrl-C stops the APIs, every function and DynamoDB Local.")
}

func tableNames(t *template.Stack) string {
	var names []string
	for _, tb := range t.Tables {
		names = append(names, tb.Name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func invoke(ctx context.Context, o options, fn string, stdout, stderr io.Writer) error {
	var payload []byte
	var err error
	if o.event == "-" {
		payload, err = io.ReadAll(os.Stdin)
	} else {
		payload, err = os.ReadFile(o.event)
	}
	if err != nil {
		return fmt.Errorf("read event: %w", err)
	}
	e, err := setUp(ctx, o, []string{fn}, stderr)
	if err != nil {
		return err
	}
	defer e.close()
	inv, err := e.stack.Pools.Invoke(ctx, fn, payload)
	if err != nil {
		return fmt.Errorf("invoke %s: %w", fn, err)
	}
	if inv.Cold {
		fmt.Fprintf(stderr, "%s: init %s, duration %s\n", fn, inv.InitDuration.Round(10*time.Microsecond), inv.Duration.Round(10*time.Microsecond))
	}
	_, err = fmt.Fprintln(stdout, string(inv.Payload))
	return err
}
