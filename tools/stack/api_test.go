package stack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llmgw/token-service/tools/stack"
	"github.com/llmgw/token-service/tools/stacktest"
	"github.com/llmgw/token-service/tools/template"
)

// testStack serves testdata/template.yaml with the test function.
type testStack struct {
	url   string
	tmpl  *template.Stack
	stack *stack.Stack
	log   *stacktest.SyncBuffer // request lines
	out   *stacktest.SyncBuffer // function output
}

// startTestStack runs the test stack with the local parameter values
// (RelayRoleArn is the development relay's role) and params over them.
func startTestStack(t *testing.T, maxInstances int, params map[string]string) *testStack {
	t.Helper()
	params, err := stack.LocalParameters("testdata/template.yaml", params)
	if err != nil {
		t.Fatal(err)
	}
	params["Secret"] = "s3cret"
	tmpl, err := template.Load("testdata/template.yaml", template.Options{
		ParameterOverrides: params,
		TableNames:         map[string]string{"Table": "items"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testStack{tmpl: tmpl, log: &stacktest.SyncBuffer{}, out: &stacktest.SyncBuffer{}}
	ts.stack, err = stack.Start(context.Background(), stack.Config{
		Template:         tmpl,
		LocalDir:         t.TempDir(),
		DynamoDBEndpoint: "http://127.0.0.1:9", // the test function never calls it
		MaxInstances:     maxInstances,
		Output:           ts.out,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ts.stack.Close)
	srv := httptest.NewServer(stack.NewAPI(tmpl, ts.stack.Pools, slog.New(slog.NewTextHandler(ts.log, nil))))
	t.Cleanup(srv.Close)
	ts.url = srv.URL
	return ts
}

type result struct {
	status int
	header http.Header
	body   []byte
}

func (ts *testStack) do(t *testing.T, method, path, auth string, body io.Reader, header ...string) result {
	t.Helper()
	req, err := http.NewRequest(method, ts.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{resp.StatusCode, resp.Header, b}
}

// echo is what the test function's echo answers.
type echo struct {
	PID   int               `json:"pid"`
	Env   map[string]string `json:"env"`
	Event struct {
		RouteKey              string            `json:"routeKey"`
		RawPath               string            `json:"rawPath"`
		RawQueryString        string            `json:"rawQueryString"`
		Cookies               []string          `json:"cookies"`
		Headers               map[string]string `json:"headers"`
		QueryStringParameters map[string]string `json:"queryStringParameters"`
		PathParameters        map[string]string `json:"pathParameters"`
		Body                  string            `json:"body"`
		IsBase64Encoded       bool              `json:"isBase64Encoded"`
		RequestContext        struct {
			Authorizer *struct {
				Lambda map[string]any `json:"lambda"`
			} `json:"authorizer"`
			HTTP struct {
				Method string `json:"method"`
			} `json:"http"`
		} `json:"requestContext"`
	} `json:"event"`
}

func (r result) echo(t *testing.T) echo {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d (%s), want 200", r.status, r.body)
	}
	var e echo
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("echo body %s: %v", r.body, err)
	}
	return e
}

const good = "Bearer good"

func TestAPI(t *testing.T) {
	ts := startTestStack(t, 2, nil)

	t.Run("echo event and environment", func(t *testing.T) {
		r := ts.do(t, "GET", "/items/7?a=1&a=2&token=sk-secret", good, nil, "X-Dup", "one", "X-Dup", "two", "Cookie", "c=1; d=2")
		e := r.echo(t)
		checks := []struct {
			name      string
			got, want any
		}{
			{"routeKey", e.Event.RouteKey, "GET /items/{id}"},
			{"rawPath", e.Event.RawPath, "/items/7"},
			{"rawQueryString", e.Event.RawQueryString, "a=1&a=2&token=sk-secret"},
			{"query a", e.Event.QueryStringParameters["a"], "1,2"},
			{"path id", e.Event.PathParameters["id"], "7"},
			{"dup header", e.Event.Headers["x-dup"], "one,two"},
			{"authorization header", e.Event.Headers["authorization"], good},
			{"cookies", strings.Join(e.Event.Cookies, "|"), "c=1|d=2"},
			{"authorizer context", e.Event.RequestContext.Authorizer.Lambda["userId"], "u1"},
			{"TABLE_NAME (Ref of the table)", e.Env["TABLE_NAME"], "items"},
			{"GREETING (Globals)", e.Env["GREETING"], "hello"},
			{"SECRET (override)", e.Env["SECRET"], "s3cret"},
			{"function name", e.Env["AWS_LAMBDA_FUNCTION_NAME"], "EchoFunction"},
			{"memory (function over Globals)", e.Env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "512"},
			{"dynamodb endpoint (its IAM proxy)", e.Env["AWS_ENDPOINT_URL_DYNAMODB"], ts.stack.DynamoDBEndpoints["EchoFunction"]},
			{"dynamodb endpoint is not DynamoDB's", e.Env["AWS_ENDPOINT_URL_DYNAMODB"] != "http://127.0.0.1:9", true},
			{"region", e.Env["AWS_REGION"], "us-east-1"},
			{"AWS_SAM_LOCAL", e.Env["AWS_SAM_LOCAL"], "true"},
			{"KMS_KEY_ID (emptied locally)", e.Env["KMS_KEY_ID"], ""},
			{"SEALING_KEY (the development key)", e.Env["SEALING_KEY"], ts.stack.SealingKey},
			{"a development key", len(ts.stack.SealingKey), 44},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
			}
		}
		if r.header.Get("Apigw-Requestid") == "" {
			t.Error("no Apigw-Requestid header")
		}
		if got := r.header.Values("X-Multi"); strings.Join(got, ",") != "1,2" {
			t.Errorf("X-Multi = %v, want [1 2]", got)
		}
	})

	t.Run("routing", func(t *testing.T) {
		tests := []struct {
			name, method, path string
			wantStatus         int
			wantRouteKey       string
		}{
			{"fixed beats param", "GET", "/items/search?keyword=x", 200, "GET /items/search"},
			{"trailing slash", "GET", "/items/9/", 200, "GET /items/{id}"},
			{"post trailing slash", "POST", "/items/", 200, "POST /items"},
			{"greedy any", "DELETE", "/files/a/b/c", 200, "ANY /files/{proxy+}"},
			{"unknown route", "GET", "/nope", 404, ""},
			{"method mismatch", "PUT", "/items/9", 404, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := ts.do(t, tt.method, tt.path, good, nil)
				if r.status != tt.wantStatus {
					t.Fatalf("status %d (%s), want %d", r.status, r.body, tt.wantStatus)
				}
				if tt.wantStatus == 404 {
					if string(r.body) != `{"message":"Not Found"}` {
						t.Errorf("body %s", r.body)
					}
					return
				}
				if got := r.echo(t).Event.RouteKey; got != tt.wantRouteKey {
					t.Errorf("routeKey %q, want %q", got, tt.wantRouteKey)
				}
			})
		}
	})

	t.Run("authorizer", func(t *testing.T) {
		tests := []struct {
			name, path, auth string
			wantStatus       int
			wantBody         string
		}{
			{"missing header", "/items/1", "", 401, `{"message":"Unauthorized"}`},
			{"refused", "/items/1", "Bearer bad", 403, `{"message":"Forbidden"}`},
			{"authorizer error", "/items/1", "Bearer fail", 500, `{"message":"Internal Server Error"}`},
			{"route without authorizer", "/public", "", 200, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := ts.do(t, "GET", tt.path, tt.auth, nil)
				if r.status != tt.wantStatus {
					t.Fatalf("status %d (%s), want %d", r.status, r.body, tt.wantStatus)
				}
				if tt.wantBody != "" && string(r.body) != tt.wantBody {
					t.Errorf("body %s, want %s", r.body, tt.wantBody)
				}
				if tt.wantStatus == 200 {
					if a := r.echo(t).Event.RequestContext.Authorizer; a != nil {
						t.Errorf("route without authorizer got authorizer %v", a)
					}
				}
			})
		}
	})

	t.Run("binary request and response", func(t *testing.T) {
		r := ts.do(t, "POST", "/items", good, bytes.NewReader([]byte{0, 1, 2, 255}), "Content-Type", "application/octet-stream")
		e := r.echo(t)
		if !e.Event.IsBase64Encoded || e.Event.Body != "AAEC/w==" {
			t.Errorf("body %q base64 %v, want AAEC/w== true", e.Event.Body, e.Event.IsBase64Encoded)
		}
		r = ts.do(t, "GET", "/items/1?do=binary", good, nil)
		if r.status != 201 || !bytes.Equal(r.body, []byte{0, 1, 2, 255}) {
			t.Errorf("got %d %v, want 201 [0 1 2 255]", r.status, r.body)
		}
		if got := strings.Join(r.header.Values("Set-Cookie"), "|"); got != "a=1|b=2" {
			t.Errorf("Set-Cookie %q, want a=1|b=2", got)
		}
	})

	t.Run("body over 10 MB", func(t *testing.T) {
		r := ts.do(t, "POST", "/items", good, bytes.NewReader(make([]byte, stack.MaxBodyBytes+1)))
		if r.status != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d, want 413", r.status)
		}
	})

	t.Run("function error", func(t *testing.T) {
		r := ts.do(t, "GET", "/items/1?do=error", good, nil)
		if r.status != 500 || string(r.body) != `{"message":"Internal Server Error"}` {
			t.Errorf("got %d %s, want 500 Internal Server Error", r.status, r.body)
		}
	})

	t.Run("request log", func(t *testing.T) {
		logs := ts.log.String()
		if !strings.Contains(logs, "path=/items/7 status=200 function=EchoFunction") {
			t.Errorf("no request line for /items/7 in:\n%s", logs)
		}
		if !strings.Contains(logs, "init=") {
			t.Errorf("no init duration for the cold start in:\n%s", logs)
		}
		for _, secret := range []string{"sk-secret", "token=", "Bearer", "good"} {
			if strings.Contains(logs, secret) {
				t.Errorf("log holds %q:\n%s", secret, logs)
			}
		}
		if !strings.Contains(ts.out.String(), "[EchoFunction] handling GET /items/{id}") {
			t.Errorf("function output not shown with its prefix:\n%s", ts.out.String())
		}
	})
}

func TestAuthorizerCache(t *testing.T) {
	tests := []struct {
		name      string
		seconds   string
		wantCalls []float64
	}{
		{"no caching", "0", []float64{1, 2, 3}},
		{"cached", "300", []float64{1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startTestStack(t, 1, map[string]string{"CacheSeconds": tt.seconds})
			for i, want := range tt.wantCalls {
				got := ts.do(t, "GET", "/items/1", good, nil).echo(t).Event.RequestContext.Authorizer.Lambda["calls"]
				if got != want {
					t.Errorf("request %d: authorizer call count %v, want %v", i+1, got, want)
				}
			}
		})
	}
}

func TestCrashIsReplaced(t *testing.T) {
	ts := startTestStack(t, 1, nil)
	before := ts.do(t, "GET", "/public", "", nil).echo(t).PID
	r := ts.do(t, "GET", "/public?do=crash", "", nil)
	if r.status != 500 || string(r.body) != `{"message":"Internal Server Error"}` {
		t.Fatalf("crash: got %d %s, want 500", r.status, r.body)
	}
	after := ts.do(t, "GET", "/public", "", nil).echo(t).PID
	if after == before {
		t.Errorf("served by the crashed instance's process %d", before)
	}
}

func TestTimeout(t *testing.T) {
	ts := startTestStack(t, 1, nil)
	start := time.Now()
	r := ts.do(t, "GET", "/public?sleep=5000", "", nil) // the template's Timeout is 2s
	if took := time.Since(start); r.status != 500 || took > 4*time.Second {
		t.Fatalf("got %d after %s, want 500 after about 2s", r.status, took)
	}
	if got := ts.do(t, "GET", "/public", "", nil); got.status != 200 {
		t.Errorf("after a timeout: status %d, want 200", got.status)
	}
}

// parentPID reads a process's parent from /proc.
func parentPID(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	// pid (comm) state ppid ...
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		t.Fatal(err)
	}
	return ppid
}

func TestKilledInstanceIsReplaced(t *testing.T) {
	tests := []struct {
		name   string
		victim func(t *testing.T, bootstrapPID int) int
	}{
		{"function process", func(t *testing.T, pid int) int { return pid }},
		{"RIE process", func(t *testing.T, pid int) int { return parentPID(t, pid) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startTestStack(t, 1, nil)
			before := ts.do(t, "GET", "/public", "", nil).echo(t).PID
			victim := tt.victim(t, before)
			if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			// RIE reaps the function at once; give the runner a moment to read it.
			time.Sleep(300 * time.Millisecond)
			r := ts.do(t, "GET", "/public", "", nil)
			if after := r.echo(t).PID; after == before {
				t.Errorf("served by the killed instance's process %d", before)
			}
		})
	}
}

func TestConcurrency(t *testing.T) {
	t.Run("more instances when all are busy", func(t *testing.T) {
		ts := startTestStack(t, 3, nil)
		var wg sync.WaitGroup
		pids := make([]int, 3)
		for i := range pids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pids[i] = ts.do(t, "GET", "/public?sleep=500", "", nil).echo(t).PID
			}()
		}
		wg.Wait()
		if pids[0] == pids[1] || pids[1] == pids[2] || pids[0] == pids[2] {
			t.Errorf("concurrent requests shared an instance: pids %v", pids)
		}
		if n := ts.stack.Pools["EchoFunction"].Instances(); n != 3 {
			t.Errorf("instances = %d, want 3", n)
		}
	})

	t.Run("beyond the limit requests wait, then 429", func(t *testing.T) {
		ts := startTestStack(t, 1, nil)
		// Timeout is 2s. A holds the one instance 0-1.5s, B waits and holds
		// it 1.5-3s, C waits from 0.2s and gives up at 2.2s.
		type res struct {
			name   string
			status int
			body   string
		}
		results := make(chan res, 3)
		send := func(name string, delay time.Duration, path string) {
			time.Sleep(delay)
			r := ts.do(t, "GET", path, "", nil)
			results <- res{name, r.status, string(r.body)}
		}
		go send("A", 0, "/public?sleep=1500")
		go send("B", 100*time.Millisecond, "/public?sleep=1500")
		go send("C", 200*time.Millisecond, "/public")
		got := map[string]res{}
		for range 3 {
			r := <-results
			got[r.name] = r
		}
		if got["A"].status != 200 || got["B"].status != 200 {
			t.Errorf("A %d, B %d: want both 200 (B waits its turn)", got["A"].status, got["B"].status)
		}
		if got["C"].status != 429 || got["C"].body != `{"message":"Too Many Requests"}` {
			t.Errorf("C: %d %s, want 429 Too Many Requests", got["C"].status, got["C"].body)
		}
		if n := ts.stack.Pools["EchoFunction"].Instances(); n != 1 {
			t.Errorf("instances = %d, want 1", n)
		}
	})
}

// withoutPermissions is t with the permissions of the given logical ids
// removed, as a deployment of a template lacking them would be.
func withoutPermissions(t *template.Stack, ids ...string) *template.Stack {
	c := *t
	c.Permissions = nil
	for _, p := range t.Permissions {
		if !slices.Contains(ids, p.LogicalID) {
			c.Permissions = append(c.Permissions, p)
		}
	}
	return &c
}

// API Gateway reaches a function or the authorizer only through a Lambda
// permission; without one the route answers 500 as in AWS, the log says
// why, and the function is not invoked.
func TestLambdaPermissionsEnforced(t *testing.T) {
	ts := startTestStack(t, 1, nil)
	const internal = `{"message":"Internal Server Error"}`
	tests := []struct {
		name        string
		remove      []string
		path, auth  string
		wantStatus  int
		wantInvoked []string // functions invoked, sorted
		wantLog     string
	}{
		{name: "all permissions", path: "/items/1", auth: good, wantStatus: 200, wantInvoked: []string{"AuthFunction", "EchoFunction"}},
		{
			name: "no route permission", remove: []string{"EchoFunctionGetPermission"}, path: "/items/1", auth: good,
			wantStatus: 500, wantInvoked: []string{"AuthFunction"},
			wantLog: `function=EchoFunction principal=apigateway.amazonaws.com source_arn=arn:aws:execute-api:us-east-1:123456789012:localapi00/$default/GET/items/{id}`,
		},
		{
			name: "another route's permission is no help", remove: []string{"EchoFunctionGetPermission"}, path: "/items/search", auth: good,
			wantStatus: 200, wantInvoked: []string{"AuthFunction", "EchoFunction"},
		},
		{
			name: "no authorizer permission", remove: []string{"ApiBearerAuthorizerPermission"}, path: "/items/1", auth: good,
			wantStatus: 500, wantLog: "function=AuthFunction principal=apigateway.amazonaws.com source_arn=arn:aws:execute-api:us-east-1:123456789012:localapi00/authorizers/Bearer",
		},
		{
			name: "identity checked before the authorizer", remove: []string{"ApiBearerAuthorizerPermission"}, path: "/items/1",
			wantStatus: 401,
		},
		{
			name: "route without authorizer", remove: []string{"ApiBearerAuthorizerPermission"}, path: "/public",
			wantStatus: 200, wantInvoked: []string{"EchoFunction"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := &stacktest.SyncBuffer{}
			counter := &stacktest.CountingInvoker{Next: ts.stack.Pools}
			srv := httptest.NewServer(stack.NewAPI(withoutPermissions(ts.tmpl, tt.remove...), counter, slog.New(slog.NewTextHandler(log, nil))))
			defer srv.Close()
			local := &testStack{url: srv.URL}
			r := local.do(t, "GET", tt.path, tt.auth, nil)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d (%s), want %d", r.status, r.body, tt.wantStatus)
			}
			if tt.wantStatus == 500 && string(r.body) != internal {
				t.Errorf("body %s, want %s", r.body, internal)
			}
			var invoked []string
			for fn := range counter.Take() {
				invoked = append(invoked, fn)
			}
			slices.Sort(invoked)
			if !slices.Equal(invoked, tt.wantInvoked) {
				t.Errorf("invoked %v, want %v", invoked, tt.wantInvoked)
			}
			if tt.wantLog != "" && !strings.Contains(log.String(), tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, log.String())
			}
			if tt.wantLog == "" && strings.Contains(log.String(), "no Lambda permission") {
				t.Errorf("log reports a missing permission:\n%s", log.String())
			}
		})
	}
}
