package conformance_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/smithy-go"

	"github.com/llmgw/token-service/tools/ddblocal"
	"github.com/llmgw/token-service/tools/sam"
	"github.com/llmgw/token-service/tools/stack"
	"github.com/llmgw/token-service/tools/stacktest"
	"github.com/llmgw/token-service/tools/template"
)

func TestMain(m *testing.M) { ddblocal.RunTests(m) }

const (
	projectRoot     = "../.."
	projectTemplate = projectRoot + "/template.yaml"
	relayRole       = "arn:aws:iam::123456789012:role/relay"
)

// tables names the template's table as both readings do.
var tables = map[string]string{"TokensTable": "tokens"}

// mutation is an edit of the project's template.
type mutation struct {
	name string
	old  string // replaced once, exactly
	new  string
	// after, if set, is where to look for old: its first occurrence after
	// this text.
	after string
}

var (
	noAuthorizerPermission = mutation{
		name: "authorizer without EnableFunctionDefaultPermissions",
		old:  "            EnableFunctionDefaultPermissions: true\n",
	}
	listWithoutQuery = mutation{
		name:  "ListTokensFunction without dynamodb:Query",
		after: "CodeUri: functions/list-tokens/",
		old:   "Action: dynamodb:Query\n",
		new:   "Action: dynamodb:GetItem\n",
	}
	noBatchDeleteRoute = mutation{
		name: "no POST /api/token/batch",
		old: `      Events:
        BatchDelete:
          Type: HttpApi
          Properties:
            ApiId: !Ref TokenApi
            Method: POST
            Path: /api/token/batch
`,
	}
)

// mutate writes the project's template with m applied (none for the zero
// mutation) into a fresh folder and returns its path; the functions'
// CodeUris resolve against projectRoot (template.Options.BaseDir).
func mutate(t *testing.T, m mutation) string {
	t.Helper()
	data, err := os.ReadFile(projectTemplate)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	if m.old != "" {
		start := 0
		if m.after != "" {
			start = strings.Index(text, m.after)
			if start < 0 {
				t.Fatalf("mutation %q: the template has no %q", m.name, m.after)
			}
		}
		rest := text[start:]
		if m.after == "" && strings.Count(rest, m.old) != 1 {
			t.Fatalf("mutation %q: the template holds %q %d times, want once", m.name, m.old, strings.Count(rest, m.old))
		}
		i := strings.Index(rest, m.old)
		if i < 0 {
			t.Fatalf("mutation %q: the template has no %q", m.name, m.old)
		}
		text = text[:start+i] + m.new + rest[i+len(m.old):]
	}
	path := filepath.Join(t.TempDir(), "template.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// readings returns the runner's and the translator's views of the
// template at path with params.
func readings(t *testing.T, path string, params map[string]string) (runner, translated view) {
	t.Helper()
	s, err := template.Load(path, template.Options{ParameterOverrides: params, TableNames: tables, BaseDir: projectRoot})
	if err != nil {
		t.Fatalf("runner: %v", err)
	}
	cf, _, err := sam.Translate(context.Background(), path, params)
	if err != nil {
		t.Fatalf("translator: %v", err)
	}
	translated, err = translatedView(cf, params, tables)
	if err != nil {
		t.Fatalf("reading the translation: %v", err)
	}
	return runnerView(s), translated
}

// The runner reads the project's template, and mutated copies of it, as
// AWS deploys them: the same routes, authorizer, Lambda permissions,
// environment and DynamoDB statements as the SAM translator's output.
func TestRunnerMatchesTranslation(t *testing.T) {
	if err := sam.Available(context.Background()); err != nil {
		t.Fatalf("the SAM translator is missing (make lint installs it): %v", err)
	}
	tests := []struct {
		name     string
		mutation mutation
		params   map[string]string
		check    func(t *testing.T, v view)
	}{
		{
			name: "project template, defaults",
			check: func(t *testing.T, v view) {
				if got := v.Permissions["TokenApiUserAccessTokenAuthorizerPermission"]; !strings.HasPrefix(got, "AuthorizerFunction apigateway.amazonaws.com ") {
					t.Errorf("authorizer permission %q, want one for API Gateway", got)
				}
				if _, ok := v.Permissions["RelayInvokePermission"]; ok {
					t.Error("RelayInvokePermission exists with RelayRoleArn empty")
				}
				if len(v.Routes) == 0 || len(v.Authorizers) != 1 {
					t.Errorf("%d routes, %d authorizers", len(v.Routes), len(v.Authorizers))
				}
			},
		},
		{
			name:   "project template, relay role and every option on",
			params: map[string]string{"RelayRoleArn": relayRole, "AlarmEmail": "ops@example.com", "Tracing": "true", "VerifyReservedConcurrency": "50"},
			check: func(t *testing.T, v view) {
				if got := v.Permissions["RelayInvokePermission"]; got != "VerifyTokenFunction "+relayRole+" -" {
					t.Errorf("relay permission %q, want VerifyTokenFunction for %s", got, relayRole)
				}
			},
		},
		{
			name: "project template, another stage's values", params: map[string]string{"LogLevel": "DEBUG", "MaxTokensPerUser": "50", "AllowedGroups": "a,b"},
			check: func(t *testing.T, v view) {
				if got := v.EnvValues["CreateTokenFunction"]["MAX_TOKENS_PER_USER"]; got != "50" {
					t.Errorf("MAX_TOKENS_PER_USER %q, want 50", got)
				}
			},
		},
		{
			name: noAuthorizerPermission.name, mutation: noAuthorizerPermission,
			check: func(t *testing.T, v view) {
				for id, p := range v.Permissions {
					if strings.HasPrefix(p, "AuthorizerFunction ") {
						t.Errorf("permission %s for the authorizer: %s", id, p)
					}
				}
			},
		},
		{
			name: listWithoutQuery.name, mutation: listWithoutQuery,
			check: func(t *testing.T, v view) {
				if got := strings.Join(v.DynamoDB["ListTokensFunction"], "; "); strings.Contains(got, "dynamodb:query") {
					t.Errorf("ListTokensFunction statements %s still allow Query", got)
				}
			},
		},
		{
			name: noBatchDeleteRoute.name, mutation: noBatchDeleteRoute,
			check: func(t *testing.T, v view) {
				for key := range v.Routes {
					if strings.HasSuffix(key, " /api/token/batch") {
						t.Errorf("route %s remains", key)
					}
				}
				if p, ok := v.Permissions["BatchDeleteTokensFunctionBatchDeletePermission"]; ok {
					t.Errorf("permission of the removed route remains: %s", p)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runner, translated := readings(t, mutate(t, tt.mutation), tt.params)
			for _, d := range runner.diff(translated) {
				t.Error(d)
			}
			// Each check holds for both readings, so that it is not
			// vacuously true of one.
			t.Run("translation", func(t *testing.T) { tt.check(t, translated) })
			t.Run("runner", func(t *testing.T) { tt.check(t, runner) })
		})
	}
}

// The comparison notices a drift: the runner's reading of the project's
// template against the translation of a copy without the authorizer's
// permission differs in that permission alone.
func TestComparisonSeesAMissingPermission(t *testing.T) {
	runner, _ := readings(t, projectTemplate, nil)
	_, translated := readings(t, mutate(t, noAuthorizerPermission), nil)
	diff := runner.diff(translated)
	if len(diff) != 1 || !strings.Contains(diff[0], "permission TokenApiUserAccessTokenAuthorizerPermission") {
		t.Errorf("diff %q, want exactly the authorizer's permission", diff)
	}
}

// pathParam matches a route path's {param} and {proxy+}.
var pathParam = regexp.MustCompile(`\{[^}]+\}`)

// The mutated templates fail on the local stack (real HTTP, real
// functions) as a deployment of them would fail in AWS.
func TestMutationsFailLocally(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs functions")
	}
	authorized := []string{"AuthorizerFunction", "ListTokensFunction"}
	tests := []struct {
		name      string
		mutation  mutation
		functions []string
		run       func(t *testing.T, s *stacktest.Stack, access string)
	}{
		{
			name: "project template", functions: authorized,
			run: func(t *testing.T, s *stacktest.Stack, access string) {
				if r := s.Call(t, "GET", "/api/token", access, ""); r.Status != 200 || !r.Envelope.Success {
					t.Errorf("GET /api/token: %d %s, want 200", r.Status, r.Body)
				}
			},
		},
		{
			// Without the authorizer's permission every authorized route
			// answers 500 before any function runs, as in AWS.
			name: noAuthorizerPermission.name, mutation: noAuthorizerPermission, functions: authorized,
			run: func(t *testing.T, s *stacktest.Stack, access string) {
				for _, rt := range s.Template.Routes {
					if rt.Authorizer == "" {
						continue
					}
					path := pathParam.ReplaceAllString(rt.Path, "1")
					r := s.Call(t, rt.Method, path, access, "{}")
					if r.Status != http.StatusInternalServerError || string(r.Body) != `{"message":"Internal Server Error"}` {
						t.Errorf("%s %s: %d %s, want 500 Internal Server Error", rt.Method, path, r.Status, r.Body)
					}
				}
				if n := s.Invocations.Take(); len(n) != 0 {
					t.Errorf("functions ran: %v", n)
				}
				if log := s.RunnerLog.String(); !strings.Contains(log, "no Lambda permission lets API Gateway invoke the function") ||
					!strings.Contains(log, "function=AuthorizerFunction") {
					t.Errorf("the runner's log does not say why:\n%s", log)
				}
			},
		},
		{
			name: listWithoutQuery.name, mutation: listWithoutQuery, functions: authorized,
			run: func(t *testing.T, s *stacktest.Stack, access string) {
				r := s.Call(t, "GET", "/api/token", access, "")
				if r.Status < 500 || r.Envelope.Success || r.Envelope.Code == "" {
					t.Errorf("GET /api/token: %d %s, want the function's 5xx envelope", r.Status, r.Body)
				}
				if out := s.Output.String(); !strings.Contains(out, "IAM: ListTokensFunction denied dynamodb:Query") {
					t.Errorf("the IAM proxy logged no AccessDenied:\n%s", out)
				}
			},
		},
		{
			name: noBatchDeleteRoute.name, mutation: noBatchDeleteRoute, functions: authorized,
			run: func(t *testing.T, s *stacktest.Stack, access string) {
				r := s.Call(t, "POST", "/api/token/batch", access, `{"ids":[1]}`)
				if r.Status != http.StatusNotFound || string(r.Body) != `{"message":"Not Found"}` {
					t.Errorf("POST /api/token/batch: %d %s, want 404 Not Found", r.Status, r.Body)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := stacktest.Start(t, stacktest.Options{Template: mutate(t, tt.mutation), BaseDir: projectRoot, Functions: tt.functions, MaxInstances: 1})
			tt.run(t, s, s.IssueToken(t, "conformance"))
			if t.Failed() {
				t.Logf("runner log:\n%s\nfunctions:\n%s", s.RunnerLog.String(), s.Output.String())
			}
		})
	}
}

// The local Lambda Invoke API acts as the relay's role: it reaches the
// verify function through RelayInvokePermission (RelayRoleArn has its
// development value locally) and nothing else; with RelayRoleArn empty,
// not even verify.
func TestInvokeAPIActsAsTheRelay(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs functions")
	}
	ctx := context.Background()
	functions := []string{"VerifyTokenFunction", "GetTokenFunction"}
	invoke := func(t *testing.T, s *stacktest.Stack, function string) error {
		t.Helper()
		_, err := stacktest.NewLambdaClient(s.LambdaURL).Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(function), Payload: []byte(`{"key":"sk-not-a-key"}`)})
		return err
	}
	denied := func(t *testing.T, err error, principal, function string) {
		t.Helper()
		var apiErr smithy.APIError
		want := "User: " + principal + " is not authorized to perform: lambda:InvokeFunction on resource: " + template.FunctionARN(function) +
			" because no resource-based policy allows the lambda:InvokeFunction action"
		if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDeniedException" || apiErr.ErrorMessage() != want {
			t.Errorf("invoke %s: %v, want AccessDeniedException %q", function, err, want)
		}
	}

	t.Run("relay role with its development value", func(t *testing.T) {
		s := stacktest.Start(t, stacktest.Options{Template: projectTemplate, Functions: functions, MaxInstances: 1})
		a, err := stacktest.Verify(ctx, stacktest.NewLambdaClient(s.LambdaURL), map[string]any{"key": "sk-not-a-key"})
		if err != nil || a.Valid || a.Code != "not_found" {
			t.Errorf("verify: %+v, %v; want the function's not_found answer", a, err)
		}
		denied(t, invoke(t, s, "GetTokenFunction"), stack.DevRelayRoleARN, "GetTokenFunction")
		if n := s.Invocations.Take(); n["GetTokenFunction"] != 0 {
			t.Errorf("GetTokenFunction ran %d times", n["GetTokenFunction"])
		}
	})
	t.Run("RelayRoleArn empty", func(t *testing.T) {
		s := stacktest.Start(t, stacktest.Options{Template: projectTemplate, Functions: functions, MaxInstances: 1,
			Overrides: map[string]string{"RelayRoleArn": ""}})
		denied(t, invoke(t, s, "VerifyTokenFunction"), stack.DevRelayRoleARN, "VerifyTokenFunction")
		denied(t, invoke(t, s, "GetTokenFunction"), stack.DevRelayRoleARN, "GetTokenFunction")
		if n := s.Invocations.Take(); len(n) != 0 {
			t.Errorf("functions ran: %v", n)
		}
	})
}
