// Package stack runs a SAM template's functions locally without Docker:
// it builds each function for the host, runs it under the AWS Lambda
// Runtime Interface Emulator (a pool of RIE processes per function),
// creates the template's DynamoDB table in DynamoDB Local, and serves the
// HttpApi as API Gateway does (routes, Lambda authorizer, payload 2.0).
// cmd/localapi is its command line.
package stack

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/llmgw/token-service/tools/ddblocal"
	"github.com/llmgw/token-service/tools/template"
)

// Config says what to run.
type Config struct {
	Template *template.Stack
	// Root is where `go build` runs (the module root); default the
	// template's folder.
	Root string
	// LocalDir holds build outputs (LocalDir/build, LocalDir/bin); default
	// Root/.local.
	LocalDir string
	// DynamoDBEndpoint is where the functions' DynamoDB calls go. Each
	// function gets its own IAMProxy in front of it as
	// AWS_ENDPOINT_URL_DYNAMODB, enforcing its template DynamoDB policy.
	DynamoDBEndpoint string
	// NoIAM gives the functions DynamoDBEndpoint itself: no policy check.
	NoIAM bool
	// Functions limits the functions built and run (logical ids); nil = all.
	Functions []string
	// MaxInstances per function (default 10).
	MaxInstances int
	// Output receives the functions' log lines; nil = os.Stderr.
	Output io.Writer
	// Verbose shows RIE's own log lines.
	Verbose bool
	// SealingKey is the development sealing key (base64 of 32 bytes) of
	// the functions that seal with KMS in AWS (see LocalEnv); empty = the
	// one kept in LocalDir/sealing-key, generated on first use.
	SealingKey string
}

// Stack is a running set of function pools.
type Stack struct {
	Template   *template.Stack
	Pools      Pools
	Bootstraps map[string]string // logical id -> built binary
	// DynamoDBEndpoints are the functions' AWS_ENDPOINT_URL_DYNAMODB by
	// logical id: their IAM proxies, or Config.DynamoDBEndpoint with NoIAM.
	DynamoDBEndpoints map[string]string
	// SealingKey is the development key the sealing functions got, if any.
	SealingKey string
	proxies    []*IAMProxy
}

// Start builds RIE and the functions and prepares one pool per function;
// instances start on first use. The caller must Close the stack.
func Start(ctx context.Context, cfg Config) (*Stack, error) {
	t := cfg.Template
	if cfg.Root == "" {
		cfg.Root = t.Dir
	}
	if cfg.LocalDir == "" {
		cfg.LocalDir = filepath.Join(cfg.Root, ".local")
	}
	if cfg.Output == nil {
		cfg.Output = os.Stderr
	}
	ids := cfg.Functions
	if ids == nil {
		for id := range t.Functions {
			ids = append(ids, id)
		}
		sort.Strings(ids)
	}
	var fns []*template.Function
	for _, id := range ids {
		fn := t.Functions[id]
		if fn == nil {
			return nil, fmt.Errorf("start stack: no function %s in the template", id)
		}
		fns = append(fns, fn)
	}
	rie, err := BuildRIE(ctx, cfg.Root, filepath.Join(cfg.LocalDir, "bin"))
	if err != nil {
		return nil, fmt.Errorf("start stack: %w", err)
	}
	codeRoot := t.Dir
	if !filepath.IsAbs(codeRoot) {
		// CodeUris are relative to the template; go build runs in Root.
		if rel, err := filepath.Rel(cfg.Root, codeRoot); err == nil {
			codeRoot = rel
		}
	}
	var buildFns []*template.Function
	for _, fn := range fns {
		c := *fn
		c.CodeDir = filepath.Join(codeRoot, fn.CodeDir)
		buildFns = append(buildFns, &c)
	}
	sealingKey := cfg.SealingKey
	for _, fn := range fns {
		if _, ok := fn.Env["KMS_KEY_ID"]; ok && sealingKey == "" {
			if sealingKey, err = DevSealingKey(filepath.Join(cfg.LocalDir, "sealing-key")); err != nil {
				return nil, fmt.Errorf("start stack: %w", err)
			}
		}
	}
	bootstraps, err := BuildFunctions(ctx, cfg.Root, filepath.Join(cfg.LocalDir, "build"), buildFns)
	if err != nil {
		return nil, fmt.Errorf("start stack: %w", err)
	}
	s := &Stack{Template: t, Pools: Pools{}, Bootstraps: map[string]string{}, DynamoDBEndpoints: map[string]string{}, SealingKey: sealingKey}
	for _, fn := range fns {
		bootstrap, err := filepath.Abs(bootstraps[fn.LogicalID])
		if err != nil {
			s.Close()
			return nil, err
		}
		s.Bootstraps[fn.LogicalID] = bootstrap
		endpoint, err := s.dynamoDBEndpoint(fn, cfg)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("start stack: %w", err)
		}
		s.Pools[fn.LogicalID] = NewPool(PoolConfig{
			Name:         fn.LogicalID,
			RIE:          rie,
			Bootstrap:    bootstrap,
			Env:          FunctionEnv(fn, LocalEnv{TaskRoot: filepath.Dir(bootstrap), DynamoDBEndpoint: endpoint, SealingKey: sealingKey}),
			Timeout:      fn.Timeout,
			MaxInstances: cfg.MaxInstances,
			Output:       cfg.Output,
			Verbose:      cfg.Verbose,
		})
	}
	return s, nil
}

// dynamoDBEndpoint starts fn's IAM proxy unless cfg.NoIAM and returns the
// endpoint fn is to use.
func (s *Stack) dynamoDBEndpoint(fn *template.Function, cfg Config) (string, error) {
	endpoint := cfg.DynamoDBEndpoint
	if endpoint != "" && !cfg.NoIAM {
		p, err := NewIAMProxy(fn, endpoint, cfg.Output)
		if err != nil {
			return "", err
		}
		if err := p.Start(); err != nil {
			return "", err
		}
		s.proxies = append(s.proxies, p)
		endpoint = p.Endpoint()
	}
	s.DynamoDBEndpoints[fn.LogicalID] = endpoint
	return endpoint, nil
}

// Close kills every instance and stops the IAM proxies.
func (s *Stack) Close() {
	s.Pools.Close()
	for _, p := range s.proxies {
		_ = p.Close()
	}
}

// LocalEnv is what a local run puts in a function's environment beyond
// its template variables.
type LocalEnv struct {
	// TaskRoot is the folder of the function's bootstrap.
	TaskRoot string
	// DynamoDBEndpoint becomes AWS_ENDPOINT_URL_DYNAMODB, if set.
	DynamoDBEndpoint string
	// SealingKey becomes SEALING_KEY of every function whose template
	// environment declares KMS_KEY_ID, and that KMS_KEY_ID becomes empty:
	// in AWS those functions seal with the stack's KMS key; locally, as
	// under sam local with the README's env file, with this development
	// key (the functions take it only with AWS_SAM_LOCAL=true).
	SealingKey string
}

// FunctionEnv is the environment of a function's RIE process (RIE hands it
// to the function): the template's variables, then what Lambda sets, with
// AWS_SAM_LOCAL=true as sam local sets it, the local sealing key (see
// LocalEnv), then the local DynamoDB settings the AWS SDK reads by itself.
// Nothing of the runner's own environment leaks in.
func FunctionEnv(fn *template.Function, local LocalEnv) []string {
	env := map[string]string{}
	for k, v := range fn.Env {
		env[k] = v
	}
	if _, ok := fn.Env["KMS_KEY_ID"]; ok {
		env["KMS_KEY_ID"] = ""
		env["SEALING_KEY"] = local.SealingKey
	}
	timeout := int(fn.Timeout / time.Second)
	if timeout < 1 {
		timeout = 1
	}
	for k, v := range map[string]string{
		"PATH":                            "/usr/local/bin:/usr/bin:/bin",
		"TZ":                              ":UTC",
		"LANG":                            "en_US.UTF-8",
		"LAMBDA_TASK_ROOT":                local.TaskRoot,
		"_HANDLER":                        "bootstrap",
		"AWS_LAMBDA_FUNCTION_NAME":        fn.LogicalID,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": strconv.Itoa(fn.MemorySize),
		"AWS_LAMBDA_FUNCTION_TIMEOUT":     strconv.Itoa(timeout),
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/" + fn.LogicalID,
		"AWS_LAMBDA_LOG_STREAM_NAME":      "local",
		"AWS_REGION":                      ddblocal.Region,
		"AWS_DEFAULT_REGION":              ddblocal.Region,
		"AWS_ACCESS_KEY_ID":               ddblocal.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":           ddblocal.SecretAccessKey,
		"AWS_SAM_LOCAL":                   "true",
	} {
		env[k] = v
	}
	if local.DynamoDBEndpoint != "" {
		env["AWS_ENDPOINT_URL_DYNAMODB"] = local.DynamoDBEndpoint
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// DevRelayRoleARN is the relay's role in a local run: the RelayRoleArn
// parameter's value when the template leaves it empty and no override
// names another (see LocalParameters), and the principal the local Lambda
// Invoke API acts as by default (see InvokePrincipal).
const DevRelayRoleARN = "arn:aws:iam::" + template.AccountID + ":role/local-relay"

// relayRoleParameter is the template parameter naming the relay's role.
const relayRoleParameter = "RelayRoleArn"

// LocalParameters returns overrides plus the development values a local
// run gives the parameters of the template at path that it leaves empty:
// RelayRoleArn gets DevRelayRoleARN, so that the relay's permission on the
// verify function exists locally. An override, even an empty one, wins.
func LocalParameters(path string, overrides map[string]string) (map[string]string, error) {
	params := map[string]string{}
	for k, v := range overrides {
		params[k] = v
	}
	empty, err := template.ParametersWithoutValue(path)
	if err != nil {
		return nil, err
	}
	if _, ok := params[relayRoleParameter]; !ok && slices.Contains(empty, relayRoleParameter) {
		params[relayRoleParameter] = DevRelayRoleARN
	}
	return params, nil
}

// InvokePrincipal is who the local Lambda Invoke API acts as by default:
// the relay's role, RelayRoleArn's value, else DevRelayRoleARN (the relay
// still exists when the stack grants it nothing).
func InvokePrincipal(t *template.Stack) string {
	if v := t.Parameters[relayRoleParameter]; v != "" {
		return v
	}
	return DevRelayRoleARN
}

// DynamoDBOptions say where DynamoDB Local is.
type DynamoDBOptions struct {
	// Endpoint of a running DynamoDB (Local); empty starts one.
	Endpoint string
	// Port for the started one (0 = a free port). When a DynamoDB Local
	// already answers on it, that one is used.
	Port int
	// DBPath keeps the started one's data there; empty = in memory.
	DBPath string
	// Output receives the started jar's output; nil discards it.
	Output io.Writer
}

// DynamoDB is the DynamoDB Local the stack uses.
type DynamoDB struct {
	Endpoint string
	// Started reports that this process started the jar (Close stops it).
	Started bool
	inst    *ddblocal.Instance
}

// OpenDynamoDB connects to opts.Endpoint, to a DynamoDB Local already on
// opts.Port, or starts one.
func OpenDynamoDB(ctx context.Context, opts DynamoDBOptions) (*DynamoDB, error) {
	if opts.Endpoint != "" {
		if err := ping(ctx, opts.Endpoint); err != nil {
			return nil, fmt.Errorf("dynamodb at %s: %w", opts.Endpoint, err)
		}
		return &DynamoDB{Endpoint: opts.Endpoint}, nil
	}
	if opts.Port != 0 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.Port))
		if c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond); err == nil {
			c.Close()
			endpoint := "http://" + addr
			if err := ping(ctx, endpoint); err != nil {
				return nil, fmt.Errorf("port %d is taken by something that is not DynamoDB Local: %w", opts.Port, err)
			}
			return &DynamoDB{Endpoint: endpoint}, nil
		}
	}
	inst, err := ddblocal.Start(ctx, ddblocal.Options{Port: opts.Port, DBPath: opts.DBPath, Output: opts.Output})
	if err != nil {
		return nil, err
	}
	return &DynamoDB{Endpoint: inst.Endpoint(), Started: true, inst: inst}, nil
}

func ping(ctx context.Context, endpoint string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := ddblocal.NewClient(endpoint).ListTables(ctx, &dynamodb.ListTablesInput{Limit: aws.Int32(1)})
	return err
}

// Client returns a DynamoDB client for the endpoint.
func (d *DynamoDB) Client() *dynamodb.Client { return ddblocal.NewClient(d.Endpoint) }

// Close stops DynamoDB Local if this process started it.
func (d *DynamoDB) Close() error {
	if d.inst != nil {
		return d.inst.Stop()
	}
	return nil
}

// EnsureTables creates every table of the template that does not exist.
func EnsureTables(ctx context.Context, client TableAPI, t *template.Stack) error {
	ids := make([]string, 0, len(t.Tables))
	for id := range t.Tables {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if _, err := EnsureTable(ctx, client, t.Tables[id]); err != nil {
			return err
		}
	}
	return nil
}

// DevSealingKey returns the base64 32-byte key kept in path, generating it
// (crypto/rand, file mode 0600) on first use.
func DevSealingKey(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		key := strings.TrimSpace(string(b))
		raw, err := base64.StdEncoding.DecodeString(key)
		if err != nil || len(raw) != 32 {
			return "", fmt.Errorf("dev sealing key %s: not base64 of 32 bytes; delete it to get a new one", path)
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("dev sealing key: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("dev sealing key: %w", err)
	}
	key := base64.StdEncoding.EncodeToString(raw[:])
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("dev sealing key: %w", err)
	}
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("dev sealing key: %w", err)
	}
	return key, nil
}
