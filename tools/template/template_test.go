package template_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmgw/token-service/tools/template"
)

const projectTemplate = "../../template.yaml"

func loadProject(t *testing.T) *template.Stack {
	t.Helper()
	s, err := template.Load(projectTemplate, template.Options{
		TableNames: map[string]string{"TokensTable": "tokens"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestProjectRoutes(t *testing.T) {
	s := loadProject(t)
	got := map[string]template.Route{}
	for _, r := range s.Routes {
		got[r.Key()] = r
	}
	upstream := []struct{ key, function string }{
		{"GET /api/token", "ListTokensFunction"},
		{"GET /api/token/search", "SearchTokensFunction"},
		{"GET /api/token/{id}", "GetTokenFunction"},
		{"POST /api/token", "CreateTokenFunction"},
		{"PUT /api/token", "UpdateTokenFunction"},
		{"DELETE /api/token/{id}", "DeleteTokenFunction"},
		{"POST /api/token/batch", "BatchDeleteTokensFunction"},
	}
	for _, u := range upstream {
		r, ok := got[u.key]
		if !ok {
			t.Errorf("route %s missing", u.key)
			continue
		}
		if r.Function != u.function {
			t.Errorf("route %s -> %s, want %s", u.key, r.Function, u.function)
		}
		if r.Authorizer != "UserAccessToken" {
			t.Errorf("route %s authorizer %q, want UserAccessToken", u.key, r.Authorizer)
		}
	}
	// Every HttpApi event the YAML declares arrived (Load fails otherwise);
	// count them independently here too.
	raw, err := os.ReadFile(projectTemplate)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(raw), "Type: HttpApi\n"); n != len(s.Routes) {
		t.Errorf("template has %d HttpApi events, loaded %d routes", n, len(s.Routes))
	}
}

func TestProjectFunctions(t *testing.T) {
	s := loadProject(t)
	byDir := map[string][]string{}
	for id, fn := range s.Functions {
		if fn.BuildMethod != "makefile" {
			t.Errorf("%s: Metadata BuildMethod %q, want makefile", id, fn.BuildMethod)
		}
		if !strings.HasPrefix(fn.CodeURI, "functions/") || !strings.HasSuffix(fn.CodeURI, "/") {
			t.Errorf("%s: CodeUri %q, want functions/<dir>/", id, fn.CodeURI)
		}
		byDir[fn.CodeDir] = append(byDir[fn.CodeDir], id)
		if fn.Env["TABLE_NAME"] != "tokens" || fn.Env["LOG_LEVEL"] != "INFO" {
			t.Errorf("%s: Globals env not merged/resolved: %v", id, fn.Env)
		}
		if fn.Timeout != 10*time.Second || fn.MemorySize != 256 {
			t.Errorf("%s: timeout %s memory %d, want Globals' 10s 256", id, fn.Timeout, fn.MemorySize)
		}
	}
	dirs, err := os.ReadDir("../../functions")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		dir := "functions/" + d.Name()
		seen[dir] = true
		if ids := byDir[dir]; len(ids) != 1 {
			t.Errorf("%s/ is the CodeUri of %d functions %v, want exactly 1", dir, len(ids), ids)
		}
	}
	for dir, ids := range byDir {
		if !seen[dir] {
			t.Errorf("%v: CodeUri %s/ does not exist", ids, dir)
		}
	}
	create := s.Functions["CreateTokenFunction"]
	if create == nil || create.Env["MAX_TOKENS_PER_USER"] != "1000" || create.Env["ALLOWED_GROUPS"] != "default" {
		t.Fatalf("CreateTokenFunction env: %v", create)
	}
	// The sealing functions declare KMS_KEY_ID (a KMS key ARN in AWS,
	// unresolved here) and an empty SEALING_KEY, which the local runner
	// fills with its development key.
	for _, id := range []string{"CreateTokenFunction", "RotateTokenFunction", "RevealTokenKeyFunction", "RevealTokenKeysFunction"} {
		env := s.Functions[id].Env
		kms, hasKMS := env["KMS_KEY_ID"]
		key, hasKey := env["SEALING_KEY"]
		if !hasKMS || kms != "" || !hasKey || key != "" {
			t.Errorf("%s: KMS_KEY_ID %q (declared %v), SEALING_KEY %q (declared %v); want both declared, empty locally", id, kms, hasKMS, key, hasKey)
		}
	}
}

func TestMakefileFunctionsMatchTemplate(t *testing.T) {
	s := loadProject(t)
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile(`(?s)FUNCTIONS := \\\n(.*?)\n\n`).FindSubmatch(mk)
	if block == nil {
		t.Fatal("no FUNCTIONS := list in the Makefile")
	}
	got := strings.Fields(strings.ReplaceAll(string(block[1]), "\\", ""))
	var want []string
	for id, fn := range s.Functions {
		want = append(want, id+":"+filepath.Base(fn.CodeDir))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Makefile FUNCTIONS %v, template %v", got, want)
	}
}

func TestProjectAuthorizerAndTable(t *testing.T) {
	s := loadProject(t)
	az := s.Authorizers["UserAccessToken"]
	if s.DefaultAuthorizer != "UserAccessToken" || az == nil {
		t.Fatalf("default authorizer %q, authorizers %v", s.DefaultAuthorizer, s.Authorizers)
	}
	if az.Function != "AuthorizerFunction" || !az.SimpleResponses || az.PayloadVersion != "2.0" ||
		!slices.Equal(az.IdentityHeaders, []string{"Authorization"}) || az.ReauthorizeEvery != 0 {
		t.Errorf("authorizer %+v", az)
	}
	tb := s.Tables["TokensTable"]
	if tb == nil || tb.Name != "tokens" {
		t.Fatalf("table %+v", tb)
	}
	keys := map[string]string{}
	for _, k := range tb.Resource.KeySchema {
		keys[k.KeyType] = k.AttributeName
	}
	types := map[string]string{}
	for _, a := range tb.Resource.AttributeDefinitions {
		types[a.AttributeName] = a.AttributeType
	}
	if keys["HASH"] != "pk" || keys["RANGE"] != "sk" || len(keys) != 2 || types["pk"] != "S" || types["sk"] != "S" {
		t.Errorf("key schema %v, attribute types %v; want pk/sk strings", keys, types)
	}
}

func TestParameters(t *testing.T) {
	tests := []struct {
		name      string
		overrides map[string]string
		wantErr   string
		wantMax   string
	}{
		{"defaults suffice", nil, "", "1000"},
		{"unknown override", map[string]string{"SealingKey": "k"}, "SealingKey", ""},
		{"number checked", map[string]string{"MaxTokensPerUser": "many"}, "MaxTokensPerUser", ""},
		{"override applies", map[string]string{"MaxTokensPerUser": "50"}, "", "50"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := template.Load(projectTemplate, template.Options{ParameterOverrides: tt.overrides})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Functions["CreateTokenFunction"].Env["MAX_TOKENS_PER_USER"]; got != tt.wantMax {
				t.Errorf("MAX_TOKENS_PER_USER = %q, want %q", got, tt.wantMax)
			}
		})
	}
	missing, err := template.ParametersWithoutDefault(projectTemplate)
	if err != nil || len(missing) != 0 {
		t.Errorf("ParametersWithoutDefault = %v, %v; want none", missing, err)
	}
	empty, err := template.ParametersWithoutValue(projectTemplate)
	if err != nil || !slices.Contains(empty, "RelayRoleArn") {
		t.Errorf("ParametersWithoutValue = %v, %v; want RelayRoleArn among them", empty, err)
	}
}

// A template fragment with one function and the events given.
func writeTemplate(t *testing.T, events string) string {
	t.Helper()
	body := `Transform: AWS::Serverless-2016-10-31
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/
      Events:
` + events
	path := filepath.Join(t.TempDir(), "template.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRouteCrossCheck(t *testing.T) {
	tests := []struct {
		name, events, wantErr string
	}{
		{
			name: "known properties load",
			events: `        A:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: get, Path: /a, TimeoutInMillis: 5000}
`,
		},
		{
			name: "unknown property is caught",
			events: `        A:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: GET, Path: /a}
        B:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: GET, Path: /b, NotAProperty: 1}
`,
			wantErr: "event B",
		},
		{
			name: "duplicate route",
			events: `        A:
          Type: HttpApi
          Properties: {Method: GET, Path: /a}
        B:
          Type: HttpApi
          Properties: {Method: GET, Path: /a}
`,
			wantErr: "twice",
		},
		{
			name: "unknown authorizer",
			events: `        A:
          Type: HttpApi
          Properties: {Method: GET, Path: /a, Auth: {Authorizer: Nope}}
`,
			wantErr: "Nope",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := template.Load(writeTemplate(t, tt.events), template.Options{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Routes) != 1 || s.Routes[0].Key() != "GET /a" || s.Routes[0].Authorizer != "" {
				t.Errorf("routes %+v, want GET /a without authorizer", s.Routes)
			}
		})
	}
}

// The usage route is authenticated by the sk- key itself, so it alone of
// the /api routes turns the authorizer off; every other one keeps it.
func TestProjectUsageRouteHasNoAuthorizer(t *testing.T) {
	s := loadProject(t)
	const usage = "GET /api/usage/token"
	found := false
	for _, r := range s.Routes {
		if !strings.HasPrefix(r.Path, "/api/") {
			continue
		}
		if r.Key() == usage {
			found = true
			if r.Function != "UsageTokenFunction" || r.Authorizer != "" {
				t.Errorf("route %s -> %s authorizer %q, want UsageTokenFunction with none", usage, r.Function, r.Authorizer)
			}
			continue
		}
		if r.Authorizer != "UserAccessToken" {
			t.Errorf("route %s authorizer %q, want UserAccessToken", r.Key(), r.Authorizer)
		}
	}
	if !found {
		t.Fatalf("route %s missing", usage)
	}
	// NONE is written out on that one event, not reached some other way
	// (such as an authorizer that does not exist).
	raw, err := os.ReadFile(projectTemplate)
	if err != nil {
		t.Fatal(err)
	}
	// The console's routes (outside /api) are the other ones without it.
	open := 0
	for _, r := range s.Routes {
		if r.Authorizer == "" {
			open++
		}
	}
	if n := strings.Count(string(raw), "Authorizer: "+template.AuthNone+"\n"); n != open {
		t.Errorf("template has %d `Authorizer: NONE` lines, want %d (one per route without an authorizer)", n, open)
	}
}

// The console's page and files are the only routes outside /api, all
// served by ConsoleFunction without the authorizer.
func TestProjectConsoleRoutes(t *testing.T) {
	s := loadProject(t)
	want := map[string]bool{"GET /": false, "GET /assets/{proxy+}": false}
	for _, r := range s.Routes {
		if strings.HasPrefix(r.Path, "/api/") {
			continue
		}
		if _, ok := want[r.Key()]; !ok {
			t.Errorf("route %s outside /api, want only %v", r.Key(), want)
			continue
		}
		want[r.Key()] = true
		if r.Function != "ConsoleFunction" || r.Authorizer != "" {
			t.Errorf("route %s -> %s authorizer %q, want ConsoleFunction with none", r.Key(), r.Function, r.Authorizer)
		}
	}
	for k, found := range want {
		if !found {
			t.Errorf("route %s missing", k)
		}
	}
}
