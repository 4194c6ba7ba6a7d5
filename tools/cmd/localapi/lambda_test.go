package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"

	"github.com/llmgw/token-service/tools/stack"
	"github.com/llmgw/token-service/tools/stacktest"
	"github.com/llmgw/token-service/tools/template"
)

// runningAPI is `localapi start-api` running in the test, on free ports.
type runningAPI struct {
	apiURL, lambdaURL string
	stdout, stderr    *stacktest.SyncBuffer
}

// startAPIForTest runs start-api with o on free ports until the test ends.
func startAPIForTest(t *testing.T, o options) *runningAPI {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningAPI{stdout: &stacktest.SyncBuffer{}, stderr: &stacktest.SyncBuffer{}}
	args := []string{"start-api", "-template", o.template, "-dynamodb-endpoint", o.dynamoDB, "-table", o.table,
		"-local-dir", o.localDir, "-max-instances", strconv.Itoa(o.maxInstances), "-port", "0", "-lambda-port", "0"}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, r.stdout, r.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("start-api: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("start-api did not stop")
		}
	})
	deadline := time.Now().Add(5 * time.Minute) // it builds every function first
	for r.apiURL == "" || r.lambdaURL == "" {
		select {
		case err := <-done:
			t.Fatalf("start-api returned %v before serving:\n%s", err, r.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("start-api printed no URLs:\n%s", r.stdout.String())
		}
		for _, line := range strings.Split(r.stdout.String(), "\n") {
			if u, ok := strings.CutPrefix(line, "API: "); ok {
				r.apiURL = strings.TrimSpace(u)
			}
			if u, ok := strings.CutPrefix(line, "Lambda Invoke API: "); ok {
				r.lambdaURL, _, _ = strings.Cut(u, " ")
			}
		}
	}
	return r
}

// call makes one HTTP API request with a user access token.
func (r *runningAPI) call(t *testing.T, method, path, token, body string) (int, envelope) {
	t.Helper()
	res := stacktest.Request(t, r.apiURL, method, path, map[string]string{"Authorization": "Bearer " + token}, body)
	if !json.Valid(res.Body) {
		t.Fatalf("%s %s: %d %s", method, path, res.Status, res.Body)
	}
	return res.Status, res.Envelope
}

// apiToken is the part of a token object the test reads.
type apiToken struct {
	ID          int64  `json:"id"`
	Key         string `json:"key"`
	Status      int    `json:"status"`
	RemainQuota int64  `json:"remain_quota"`
	UsedQuota   int64  `json:"used_quota"`
}

func (r *runningAPI) token(t *testing.T, method, path, access, body string) apiToken {
	t.Helper()
	status, env := r.call(t, method, path, access, body)
	var tok apiToken
	if status != 200 || json.Unmarshal(env.Data, &tok) != nil {
		t.Fatalf("%s %s: %d %s %s", method, path, status, env.Message, env.Data)
	}
	return tok
}

// TestLambdaInvokeAPI runs the relay's side through start-api's Lambda
// Invoke API with the AWS SDK, against tokens made over its HTTP API.
func TestLambdaInvokeAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every function")
	}
	ctx := context.Background()
	o := testOptions(t, t.TempDir())
	o.maxInstances = 10
	api := startAPIForTest(t, o)
	user := issueToken(t, o.dynamoDB, o.table, "relay-user")
	client := stacktest.NewLambdaClient(api.lambdaURL)
	secrets := []string{user, "sk-not-a-key"} // kept out of every log line

	t.Run("200 concurrent verifies of 10 on a quota of 1000", func(t *testing.T) {
		tok := api.token(t, "POST", "/api/token/", user, `{"name":"concurrent","expired_time":-1,"remain_quota":1000}`)
		secrets = append(secrets, tok.Key)
		const n = 200
		answers := make([]stacktest.VerifyAnswer, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				answers[i], errs[i] = stacktest.Verify(ctx, client, map[string]any{"key": tok.Key, "consume": 10})
			}()
		}
		wg.Wait()
		valid, codes := 0, map[string]int{}
		for i := range n {
			if errs[i] != nil {
				t.Errorf("invocation %d: %v", i, errs[i])
				continue
			}
			if answers[i].Valid {
				valid++
			} else {
				codes[answers[i].Code]++
			}
		}
		if valid != 100 {
			t.Errorf("%d valid answers, want 100 (refusals: %v)", valid, codes)
		}
		for code := range codes {
			if code != "insufficient_quota" && code != "exhausted" {
				t.Errorf("refusal code %q (%d times), want insufficient_quota or exhausted", code, codes[code])
			}
		}
		got := api.token(t, "GET", "/api/token/"+strconv.FormatInt(tok.ID, 10), user, "")
		if got.RemainQuota != 0 || got.UsedQuota != 1000 || got.Status != 4 {
			t.Errorf("token after: remain %d used %d status %d, want 0, 1000, 4", got.RemainQuota, got.UsedQuota, got.Status)
		}
	})

	t.Run("only verify is open to the relay", func(t *testing.T) {
		want := "  callers act as " + stack.DevRelayRoleARN + "; template permissions open to it: VerifyTokenFunction\n"
		if !strings.Contains(api.stdout.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, api.stdout.String())
		}
		_, err := client.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("GetTokenFunction"), Payload: []byte(`{}`)})
		var apiErr smithy.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDeniedException" {
			t.Fatalf("error %v (%T), want AccessDeniedException", err, err)
		}
	})

	t.Run("unknown function", func(t *testing.T) {
		_, err := client.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("NoSuchFunction"), Payload: []byte(`{}`)})
		var nf *types.ResourceNotFoundException
		if !errors.As(err, &nf) {
			t.Fatalf("error %v (%T), want *types.ResourceNotFoundException", err, err)
		}
	})

	t.Run("malformed key", func(t *testing.T) {
		a, err := stacktest.Verify(ctx, client, map[string]any{"key": "sk-not-a-key", "consume": 1})
		if err != nil {
			t.Fatal(err)
		}
		if a.Valid || a.Code != "not_found" {
			t.Errorf("answer %+v, want valid false, not_found", a)
		}
	})

	t.Run("a key through its life: event, disabled, deleted", func(t *testing.T) {
		tok := api.token(t, "POST", "/api/token/", user, `{"name":"lifecycle","expired_time":-1,"remain_quota":100}`)
		secrets = append(secrets, tok.Key)
		path := "/api/token/" + strconv.FormatInt(tok.ID, 10)

		// An Event invocation answers 202 at once and charges in the background.
		payload, _ := json.Marshal(map[string]any{"key": tok.Key, "consume": 5})
		out, err := client.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("VerifyTokenFunction"),
			InvocationType: types.InvocationTypeEvent, Payload: payload})
		if err != nil || out.StatusCode != 202 {
			t.Fatalf("Event invoke: %v, want 202", err)
		}
		deadline := time.Now().Add(15 * time.Second)
		for api.token(t, "GET", path, user, "").UsedQuota != 5 {
			if time.Now().After(deadline) {
				t.Fatal("the Event invocation never charged 5")
			}
			time.Sleep(100 * time.Millisecond)
		}

		steps := []struct {
			name             string
			method, path     string // an HTTP call before the verify, if set
			body             string
			wantValid        bool
			wantCode         string
			wantRemainQuotum int64
		}{
			{name: "enabled", wantValid: true, wantRemainQuotum: 95},
			{name: "disabled", method: "PUT", path: "/api/token?status_only=true",
				body: fmt.Sprintf(`{"id":%d,"status":2}`, tok.ID), wantCode: "disabled"},
			{name: "deleted", method: "DELETE", path: path, wantCode: "not_found"},
		}
		for _, s := range steps {
			t.Run(s.name, func(t *testing.T) {
				if s.method != "" {
					if status, env := api.call(t, s.method, s.path, user, s.body); status != 200 {
						t.Fatalf("%s %s: %d %s", s.method, s.path, status, env.Message)
					}
				}
				a, err := stacktest.Verify(ctx, client, map[string]any{"key": tok.Key})
				if err != nil {
					t.Fatal(err)
				}
				if a.Valid != s.wantValid || a.Code != s.wantCode {
					t.Fatalf("answer %+v, want valid %v code %q", a, s.wantValid, s.wantCode)
				}
				if s.wantValid && (a.Token == nil || a.Token.RemainQuota != s.wantRemainQuotum) {
					t.Errorf("answer token %+v, want remain_quota %d", a.Token, s.wantRemainQuotum)
				}
			})
		}
	})

	logs := api.stderr.String()
	if t.Failed() {
		t.Logf("runner log:\n%s", logs)
	}
	for _, secret := range secrets {
		if strings.Contains(logs, secret) || strings.Contains(logs, strings.TrimPrefix(secret, "sk-")) {
			t.Errorf("the runner's log holds %.6s...", secret)
		}
	}
	if !strings.Contains(logs, "msg=invoke api=lambda status=200 function=VerifyTokenFunction") {
		t.Errorf("no request line of the Lambda Invoke API in the log:\n%.2000s", logs)
	}
}

func TestInvokePrincipal(t *testing.T) {
	load := func(relay string) *template.Stack {
		params, err := stack.LocalParameters(projectTemplate, map[string]string{"RelayRoleArn": relay})
		if err != nil {
			t.Fatal(err)
		}
		tmpl, err := template.Load(projectTemplate, template.Options{ParameterOverrides: params})
		if err != nil {
			t.Fatal(err)
		}
		return tmpl
	}
	const relay, other = "arn:aws:iam::123456789012:role/relay", "arn:aws:iam::123456789012:role/other"
	tests := []struct {
		name, flag, relayRole, want string
	}{
		{"the development relay", "", stack.DevRelayRoleARN, stack.DevRelayRoleARN},
		{"the template's relay", "", relay, relay},
		{"RelayRoleArn empty", "", "", stack.DevRelayRoleARN},
		{"flag", other, relay, other},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := invokePrincipal(options{invokePrincipal: tt.flag}, load(tt.relayRole)); got != tt.want {
				t.Errorf("invokePrincipal = %q, want %q", got, tt.want)
			}
		})
	}
	// start-api takes the flag (and stops at the bad port before starting).
	err := run(context.Background(), []string{"start-api", "-invoke-principal", other, "-lambda-port", "nope"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-lambda-port") {
		t.Errorf("start-api -invoke-principal: %v, want only the -lambda-port error", err)
	}
}

func TestLambdaListenAddr(t *testing.T) {
	tests := []struct {
		name, addr, port string
		want             string
		wantErr          bool
	}{
		{"default", "127.0.0.1", "3001", "127.0.0.1:3001", false},
		{"free port", "127.0.0.1", "0", "127.0.0.1:0", false},
		{"all interfaces", "0.0.0.0", "4001", "0.0.0.0:4001", false},
		{"off", "127.0.0.1", "off", "", false},
		{"not a port", "127.0.0.1", "none", "", true},
		{"out of range", "127.0.0.1", "70000", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := lambdaListenAddr(options{lambdaAddr: tt.addr, lambdaPort: tt.port})
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("lambdaListenAddr(%s, %s) = %q, %v; want %q, error %v", tt.addr, tt.port, got, err, tt.want, tt.wantErr)
			}
		})
	}
	if err := run(context.Background(), []string{"start-api", "-lambda-port", "nope"}, io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "-lambda-port") {
		t.Errorf("start-api -lambda-port nope: %v, want a -lambda-port error before anything starts", err)
	}
}
