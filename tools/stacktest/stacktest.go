// Package stacktest runs the project's stack (template.yaml) for end-to-end
// tests: every function built and run under the local runner (tools/stack)
// against DynamoDB Local, the HTTP API and the Lambda Invoke API served on
// free ports, and the helpers those tests share (issuing user access
// tokens, calling the API, invoking VerifyTokenFunction, capturing logs).
//
// A test package that uses it declares
//
//	func TestMain(m *testing.M) { ddblocal.RunTests(m) }
//
// since the stack's DynamoDB is dynamotest's.
package stacktest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/llmgw/token-service/internal/auth"
	"github.com/llmgw/token-service/internal/dynamotest"
	"github.com/llmgw/token-service/internal/token/dynamo"
	"github.com/llmgw/token-service/relay"
	"github.com/llmgw/token-service/tools/ddblocal"
	"github.com/llmgw/token-service/tools/stack"
	"github.com/llmgw/token-service/tools/template"
)

// SyncBuffer is a bytes.Buffer safe for concurrent writes (the function
// instances write their lines concurrently).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Options say what to run.
type Options struct {
	// Template is the path of template.yaml (relative to the test's folder,
	// e.g. "../../template.yaml").
	Template string
	// Functions limits the functions run (logical ids); nil = all.
	Functions []string
	// MaxInstances per function (default 4).
	MaxInstances int
	// Overrides are template parameter values; RelayRoleArn defaults to
	// stack.DevRelayRoleARN (stack.LocalParameters). The sealing functions
	// get a fresh development key.
	Overrides map[string]string
	// BaseDir is the folder the template's CodeUris are relative to (and
	// where the functions are built): default the template's folder. A
	// test running a mutated copy of the project's template from a
	// temporary folder sets it to the project's root.
	BaseDir string
	// InvokePrincipal is who the Lambda Invoke API acts as; default the
	// relay's role (stack.InvokePrincipal).
	InvokePrincipal string
}

// Stack is the running stack of a test.
type Stack struct {
	// APIURL serves the HTTP API, LambdaURL the Lambda Invoke API.
	APIURL, LambdaURL string
	// Endpoint is DynamoDB Local's, Table the template table's local name.
	Endpoint, Table string
	// DB is a client of Endpoint.
	DB *dynamodb.Client
	// Output holds the functions' lines as the runner writes them (each
	// prefixed with its function's logical id).
	Output *SyncBuffer
	// RunnerLog holds the runner's own lines (the request logs of both APIs).
	RunnerLog *SyncBuffer
	// Template is the loaded template.
	Template *template.Stack
	// Invocations counts the invokes of each function by both APIs.
	Invocations *CountingInvoker
	// LocalDir is the runner's folder: its development sealing key is
	// LocalDir/sealing-key.
	LocalDir string
}

// CountingInvoker counts the invokes of each function on their way to
// Next: how a test sees that a function (e.g. the authorizer) did not run.
type CountingInvoker struct {
	Next stack.Invoker
	mu   sync.Mutex
	n    map[string]int
}

// Invoke counts the invoke and passes it on.
func (c *CountingInvoker) Invoke(ctx context.Context, function string, payload []byte) (*stack.Invocation, error) {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[function]++
	c.mu.Unlock()
	return c.Next.Invoke(ctx, function, payload)
}

// Take returns the counts so far and starts again from zero.
func (c *CountingInvoker) Take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = map[string]int{}
	if n == nil {
		n = map[string]int{}
	}
	return n
}

// Start builds and runs the stack with a fresh table until the test (and
// its subtests) end.
func Start(t testing.TB, o Options) *Stack {
	t.Helper()
	if o.MaxInstances == 0 {
		o.MaxInstances = 4
	}
	ctx := context.Background()
	var b [4]byte
	_, _ = rand.Read(b[:])
	s := &Stack{
		Endpoint:  dynamotest.Endpoint(t),
		Table:     "stacktest-" + hex.EncodeToString(b[:]),
		Output:    &SyncBuffer{},
		RunnerLog: &SyncBuffer{},
	}
	s.DB = ddblocal.NewClient(s.Endpoint)
	localDir := t.TempDir()
	s.LocalDir = localDir
	params, err := stack.LocalParameters(o.Template, o.Overrides)
	if err != nil {
		t.Fatal(err)
	}
	root := o.BaseDir
	if root == "" {
		root = filepath.Dir(o.Template)
	}
	tmpl, err := template.Load(o.Template, template.Options{
		ParameterOverrides: params,
		TableNames:         map[string]string{"TokensTable": s.Table},
		BaseDir:            o.BaseDir,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Template = tmpl
	if err := stack.EnsureTables(ctx, s.DB, tmpl); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = s.DB.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(s.Table)})
	})
	st, err := stack.Start(ctx, stack.Config{
		Template:         tmpl,
		Root:             root,
		LocalDir:         localDir,
		DynamoDBEndpoint: s.Endpoint,
		Functions:        o.Functions,
		MaxInstances:     o.MaxInstances,
		Output:           s.Output,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	log := slog.New(slog.NewTextHandler(s.RunnerLog, nil))
	s.Invocations = &CountingInvoker{Next: st.Pools}
	api := httptest.NewUnstartedServer(stack.NewAPI(tmpl, s.Invocations, log))
	// Room for the oversized headers tests send (net/http's default
	// refuses over 1 MiB with 431 before the API sees them).
	api.Config.MaxHeaderBytes = 4 << 20
	api.Start()
	t.Cleanup(api.Close)
	principal := o.InvokePrincipal
	if principal == "" {
		principal = stack.InvokePrincipal(tmpl)
	}
	lam := httptest.NewServer(stack.NewLambdaAPI(tmpl, st.Pools.Names(), principal, s.Invocations, log.With("api", "lambda")))
	t.Cleanup(lam.Close)
	s.APIURL, s.LambdaURL = api.URL, lam.URL
	return s
}

// AccessTokens returns the access token store of the stack's table, what
// admin commands write.
func (s *Stack) AccessTokens(t testing.TB) *dynamo.AccessTokens {
	t.Helper()
	return accessTokens(t, s.DB, s.Table)
}

func accessTokens(t testing.TB, client dynamo.API, table string) *dynamo.AccessTokens {
	t.Helper()
	core, err := dynamo.NewCore(client, table)
	if err != nil {
		t.Fatal(err)
	}
	return dynamo.NewAccessTokens(core)
}

// IssueToken stores a new access token for user in table the way cmd/admin
// does, and returns it.
func IssueToken(t testing.TB, endpoint, table, user string) string {
	t.Helper()
	store := accessTokens(t, ddblocal.NewClient(endpoint), table)
	tok, err := auth.NewAccessToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := store.PutAccessToken(context.Background(), auth.Hash(tok), auth.Principal{UserID: user, Role: auth.RoleUser}); err != nil {
		t.Fatal(err)
	}
	return tok
}

// IssueToken issues an access token for user in the stack's table.
func (s *Stack) IssueToken(t testing.TB, user string) string {
	t.Helper()
	return IssueToken(t, s.Endpoint, s.Table, user)
}

// Envelope is the body of a function's JSON response.
type Envelope struct {
	Success bool            `json:"success"`
	Message string          `json:"message"`
	Code    string          `json:"code"`
	Data    json.RawMessage `json:"data"`
}

// Response is one HTTP answer of the API.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	// Envelope is Body decoded, when it is an envelope.
	Envelope Envelope
}

// Do makes one HTTP API request; header values are set as given (an
// Authorization value is sent as is).
func (s *Stack) Do(t testing.TB, method, path string, header map[string]string, body string) Response {
	t.Helper()
	return Request(t, s.APIURL, method, path, header, body)
}

// Request makes one HTTP request to the API at baseURL: Do for an API that
// Start did not start (the runner's own command, say).
func Request(t testing.TB, baseURL, method, path string, header map[string]string, body string) Response {
	t.Helper()
	req, err := http.NewRequest(method, baseURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
	_ = json.Unmarshal(raw, &r.Envelope)
	return r
}

// Call makes one HTTP API request with a user access token as the Bearer.
func (s *Stack) Call(t testing.TB, method, path, access, body string) Response {
	t.Helper()
	return s.Do(t, method, path, map[string]string{"Authorization": "Bearer " + access}, body)
}

// NewLambdaClient is the AWS SDK's Lambda client pointed at url, as a relay
// configured for the local runner would make it; no retries, so every call
// is one invocation.
func NewLambdaClient(url string) *lambda.Client {
	return lambda.New(lambda.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
		Retryer:      aws.NopRetryer{},
	})
}

// VerifyAnswer is the part of a verify answer tests read.
type VerifyAnswer struct {
	Valid bool         `json:"valid"`
	Code  string       `json:"code"`
	Token *VerifyToken `json:"token"`
}

// VerifyToken is the part of a valid answer's token tests read.
type VerifyToken struct {
	ID          int64 `json:"id"`
	RemainQuota int64 `json:"remain_quota"`
}

// Verify sends event (key, model, client_ip, consume, settle, request_id)
// to VerifyTokenFunction through the relay client (package relay), once,
// as a gateway's relay would, and returns its answer; a refusal is an
// answer with its code. A function error or a failed invoke is the error.
func Verify(ctx context.Context, client *lambda.Client, event map[string]any) (VerifyAnswer, error) {
	b, err := json.Marshal(event)
	if err != nil {
		return VerifyAnswer{}, err
	}
	var ev relay.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		return VerifyAnswer{}, fmt.Errorf("event %s: %w", b, err)
	}
	a, err := relay.New(client, "VerifyTokenFunction", relay.Options{Attempts: 1, AttemptTimeout: time.Minute}).Do(ctx, ev)
	var refused *relay.Refusal
	switch {
	case errors.As(err, &refused):
		return VerifyAnswer{Code: string(refused.Code)}, nil
	case err != nil:
		return VerifyAnswer{}, err
	}
	return VerifyAnswer{Valid: true, Token: &VerifyToken{ID: a.Token.ID, RemainQuota: a.Token.RemainQuota}}, nil
}
