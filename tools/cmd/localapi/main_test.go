package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmgw/token-service/internal/dynamotest"
	"github.com/llmgw/token-service/tools/ddblocal"
	"github.com/llmgw/token-service/tools/stack"
	"github.com/llmgw/token-service/tools/stacktest"
)

func TestMain(m *testing.M) { ddblocal.RunTests(m) }

const projectTemplate = "../../../template.yaml"

// testOptions runs against the tests' DynamoDB Local with a fresh table.
func testOptions(t *testing.T, localDir string) options {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return options{
		template:     projectTemplate,
		overrides:    overrides{},
		dynamoDB:     dynamotest.Endpoint(t),
		table:        "localapi-" + hex.EncodeToString(b[:]),
		maxInstances: 4,
		localDir:     localDir,
	}
}

// issueToken stores a new access token for user the way cmd/admin does.
func issueToken(t *testing.T, endpoint, table, user string) string {
	t.Helper()
	return stacktest.IssueToken(t, endpoint, table, user)
}

type envelope = stacktest.Envelope

func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every function")
	}
	ctx := context.Background()
	o := testOptions(t, t.TempDir())
	out := &stacktest.SyncBuffer{}
	e, err := setUp(ctx, o, nil, out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.close)
	logs := &stacktest.SyncBuffer{}
	srv := httptest.NewServer(stack.NewAPI(e.tmpl, e.stack.Pools, slog.New(slog.NewTextHandler(logs, nil))))
	t.Cleanup(srv.Close)

	alice := issueToken(t, o.dynamoDB, o.table, "alice")
	bob := issueToken(t, o.dynamoDB, o.table, "bob")

	call := func(t *testing.T, method, path, token, body string) (int, envelope, string) {
		t.Helper()
		header := map[string]string{}
		if token != "" {
			header["Authorization"] = "Bearer " + token
		}
		res := stacktest.Request(t, srv.URL, method, path, header, body)
		return res.Status, res.Envelope, string(res.Body)
	}

	steps := []struct {
		name, method, path, token, body string
		wantStatus                      int
		wantData                        string // substring of data, if set
		wantBody                        string // whole body, if set
	}{
		{"missing bearer", "GET", "/api/token", "", "", 401, "", `{"message":"Unauthorized"}`},
		{"wrong bearer", "GET", "/api/token", "at-" + strings.Repeat("A", 43), "", 403, "", `{"message":"Forbidden"}`},
		{"malformed bearer", "GET", "/api/token", "nonsense", "", 403, "", `{"message":"Forbidden"}`},
		{"unknown route", "GET", "/api/nothing", alice, "", 404, "", `{"message":"Not Found"}`},
		{"method not routed", "PATCH", "/api/token", alice, "", 404, "", `{"message":"Not Found"}`},
		{"list empty", "GET", "/api/token/?p=1&size=20", alice, "", 200, `"total":0`, ""},
		{"create", "POST", "/api/token/", alice, `{"name":"first","expired_time":-1,"remain_quota":1000}`, 200, `"id":1`, ""},
		{"create batch", "POST", "/api/token", alice, `{"name":"more","expired_time":-1,"count":2}`, 200, `"name":"more-2"`, ""},
		{"list", "GET", "/api/token", alice, "", 200, `"total":3`, ""},
		{"search", "GET", "/api/token/search?keyword=FIRST", alice, "", 200, `"name":"first"`, ""},
		{"get", "GET", "/api/token/1", alice, "", 200, `"name":"first"`, ""},
		{"get trailing slash", "GET", "/api/token/1/", alice, "", 200, `"name":"first"`, ""},
		{"other user's token", "GET", "/api/token/1", bob, "", 404, "", ""},
		{"update", "PUT", "/api/token/", alice, `{"id":1,"name":"renamed"}`, 200, `"name":"renamed"`, ""},
		{"update status only", "PUT", "/api/token?status_only=true", alice, `{"id":1,"status":2}`, 200, `"status":2`, ""},
		{"delete", "DELETE", "/api/token/1", alice, "", 200, "", ""},
		{"get deleted", "GET", "/api/token/1", alice, "", 404, "", ""},
		{"batch delete", "POST", "/api/token/batch", alice, `{"ids":[1,2,3]}`, 200, "2", ""},
		{"batch delete bad input", "POST", "/api/token/batch", alice, `{"ids":[]}`, 400, "", ""},
		{"list after", "GET", "/api/token", alice, "", 200, `"total":0`, ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			status, env, raw := call(t, s.method, s.path, s.token, s.body)
			if status != s.wantStatus {
				t.Fatalf("%s %s: status %d (%s), want %d", s.method, s.path, status, raw, s.wantStatus)
			}
			if s.wantBody != "" && raw != s.wantBody {
				t.Errorf("body %s, want %s", raw, s.wantBody)
			}
			if s.wantData != "" && !strings.Contains(string(env.Data), s.wantData) {
				t.Errorf("data %s, want it to contain %s", env.Data, s.wantData)
			}
			if s.wantStatus == 200 && !env.Success {
				t.Errorf("success false: %s", raw)
			}
		})
	}

	all := logs.String() + out.String()
	for _, secret := range []string{alice, bob, "p=1", "keyword=FIRST"} {
		if strings.Contains(all, secret) {
			t.Errorf("logs hold %q", secret)
		}
	}
	for _, fn := range []string{"AuthorizerFunction", "ListTokensFunction", "CreateTokenFunction", "GetTokenFunction",
		"SearchTokensFunction", "UpdateTokenFunction", "DeleteTokenFunction", "BatchDeleteTokensFunction"} {
		if !strings.Contains(logs.String(), fn+"=") {
			t.Errorf("no init duration logged for %s", fn)
		}
	}
	t.Logf("request log:\n%s", logs.String())
}

// eventPlaceholder is the access token the events/ fixtures carry.
const eventPlaceholder = "at-EventsPlaceholderReplacedByTheRunner0000000"

// verifyKeyPlaceholder is the key events/verify-token.json carries (its
// checksum fails: as it is, the answer is not_found).
const verifyKeyPlaceholder = "sk-VerifyEventPlaceholderKeyReplacedByTheRunner0000"

// TestEventFiles runs every events/*.json through `localapi invoke`, in an
// order where each finds what it needs (create makes token 1 of the events'
// user), and checks each one's result.
func TestEventFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every function")
	}
	ctx := context.Background()
	o := testOptions(t, t.TempDir())
	files, err := filepath.Glob("../../../events/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no event files: %v", err)
	}
	cases := []struct {
		file, function string
		token          string // "real" substitutes an issued token
		wantStatus     int    // HTTP events
		wantAuthorized *bool  // the authorizer event
		// The verify event: key "real" substitutes the key create-token.json
		// made; wantValid and wantCode are the answer's valid and code.
		key       string
		wantValid *bool
		wantCode  string
	}{
		{file: "verify-token.json", function: "VerifyTokenFunction", key: "placeholder", wantValid: ptr(false), wantCode: "not_found"},
		{file: "authorizer.json", function: "AuthorizerFunction", token: "placeholder", wantAuthorized: ptr(false)},
		{file: "authorizer.json", function: "AuthorizerFunction", token: "real", wantAuthorized: ptr(true)},
		{file: "get-token.json", function: "GetTokenFunction", wantStatus: 404},
		{file: "create-token.json", function: "CreateTokenFunction", wantStatus: 200},
		{file: "verify-token.json", function: "VerifyTokenFunction", key: "real", wantValid: ptr(true)},
		{file: "list-tokens.json", function: "ListTokensFunction", wantStatus: 200},
		{file: "search-tokens.json", function: "SearchTokensFunction", wantStatus: 200},
		{file: "get-token.json", function: "GetTokenFunction", wantStatus: 200},
		{file: "update-token.json", function: "UpdateTokenFunction", wantStatus: 200},
		{file: "reveal-token-key.json", function: "RevealTokenKeyFunction", wantStatus: 200},
		{file: "reveal-token-keys.json", function: "RevealTokenKeysFunction", wantStatus: 200},
		{file: "rotate-token.json", function: "RotateTokenFunction", wantStatus: 200},
		{file: "delete-token.json", function: "DeleteTokenFunction", wantStatus: 200},
		{file: "batch-delete-tokens.json", function: "BatchDeleteTokensFunction", wantStatus: 200},
		{file: "usage-token.json", function: "UsageTokenFunction", wantStatus: 401}, // placeholder key: bad checksum
		{file: "console.json", function: "ConsoleFunction", wantStatus: 200},        // the page: no authorizer, no table
	}
	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.file] = true
	}
	for _, f := range files {
		if !covered[filepath.Base(f)] {
			t.Errorf("events/%s has no expected result in TestEventFiles", filepath.Base(f))
		}
	}

	// The table exists once the first invoke has set the stack up; issue
	// the real token then.
	realToken := ""
	realKey := "" // the full key of the token create-token.json made
	dir := t.TempDir()
	for i, c := range cases {
		name := c.file
		if c.token != "" {
			name += "/" + c.token + " token"
		}
		if c.key != "" {
			name += "/" + c.key + " key"
		}
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("../../../events", c.file))
			if err != nil {
				t.Fatal(err)
			}
			if c.token == "real" {
				if realToken == "" {
					realToken = issueToken(t, o.dynamoDB, o.table, "events-user")
				}
				raw = bytes.ReplaceAll(raw, []byte(eventPlaceholder), []byte(realToken))
			}
			if c.key == "real" {
				if realKey == "" {
					t.Fatal("create-token.json gave no key")
				}
				raw = bytes.ReplaceAll(raw, []byte(verifyKeyPlaceholder), []byte(realKey))
			}
			path := filepath.Join(dir, c.file)
			if err := os.WriteFile(path, raw, 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"invoke", c.function, "-e", path,
				"-template", o.template, "-dynamodb-endpoint", o.dynamoDB, "-table", o.table, "-local-dir", o.localDir}
			var stdout bytes.Buffer
			stderr := &stacktest.SyncBuffer{}
			if err := run(ctx, args, &stdout, stderr); err != nil {
				t.Fatalf("invoke %d: %v\n%s", i, err, stderr.String())
			}
			if c.wantAuthorized != nil {
				var got struct {
					IsAuthorized bool           `json:"isAuthorized"`
					Context      map[string]any `json:"context"`
				}
				if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
					t.Fatalf("authorizer answer %s: %v", stdout.String(), err)
				}
				if got.IsAuthorized != *c.wantAuthorized {
					t.Errorf("isAuthorized %v, want %v (%s)", got.IsAuthorized, *c.wantAuthorized, stdout.String())
				}
				if got.IsAuthorized && got.Context["userId"] != "events-user" {
					t.Errorf("context %v, want userId events-user", got.Context)
				}
				return
			}
			if c.wantValid != nil {
				var got struct {
					Valid bool   `json:"valid"`
					Code  string `json:"code"`
				}
				if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
					t.Fatalf("verify answer %s: %v", stdout.String(), err)
				}
				if got.Valid != *c.wantValid || got.Code != c.wantCode {
					t.Errorf("valid %v code %q, want %v %q (%s)", got.Valid, got.Code, *c.wantValid, c.wantCode, stdout.String())
				}
				return
			}
			var got struct {
				StatusCode int    `json:"statusCode"`
				Body       string `json:"body"`
			}
			if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
				t.Fatalf("answer %s: %v", stdout.String(), err)
			}
			if got.StatusCode != c.wantStatus {
				t.Errorf("statusCode %d (%s), want %d", got.StatusCode, got.Body, c.wantStatus)
			}
			if c.file == "create-token.json" {
				var created struct {
					Data struct {
						Key string `json:"key"`
					} `json:"data"`
				}
				_ = json.Unmarshal([]byte(got.Body), &created)
				realKey = created.Data.Key
			}
			for _, line := range strings.Split(stderr.String(), "\n") {
				if strings.HasPrefix(line, c.function+": init ") {
					t.Log(line)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestParseFlags(t *testing.T) {
	var o options
	fs := newFlagSet("start-api", &o, io.Discard)
	fs.IntVar(&o.port, "port", 3000, "")
	err := parseFlags(fs, []string{"-parameter-overrides", "A=1", "B=2", "-port", "3001", "C=3"}, &o)
	if err != nil {
		t.Fatal(err)
	}
	if o.port != 3001 || o.overrides["A"] != "1" || o.overrides["B"] != "2" || o.overrides["C"] != "3" {
		t.Errorf("port %d overrides %v, want 3001 A=1 B=2 C=3", o.port, o.overrides)
	}
	if err := parseFlags(fs, []string{"stray"}, &o); err == nil {
		t.Error("a stray argument was accepted")
	}
}

func TestOverridesFlag(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    map[string]string
		wantErr bool
	}{
		{"pairs", []string{"A=1 B=x=y"}, map[string]string{"A": "1", "B": "x=y"}, false},
		{"repeated", []string{"A=1", "B=2"}, map[string]string{"A": "1", "B": "2"}, false},
		{"sam long form", []string{"ParameterKey=A,ParameterValue=v"}, map[string]string{"A": "v"}, false},
		{"no value", []string{"A"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := overrides{}
			var err error
			for _, a := range tt.args {
				if err = o.Set(a); err != nil {
					break
				}
			}
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Set(%v) = %v, want an error", tt.args, o)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(o) != len(tt.want) {
				t.Fatalf("got %v, want %v", o, tt.want)
			}
			for k, v := range tt.want {
				if o[k] != v {
					t.Errorf("%s = %q, want %q", k, o[k], v)
				}
			}
		})
	}
}
