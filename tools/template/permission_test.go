package template_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmgw/token-service/tools/template"
)

const relayRole = "arn:aws:iam::123456789012:role/relay"

// The project's template gives API Gateway one permission per route and
// one for the authorizer; the relay's role reaches verify only when
// RelayRoleArn is set, and nothing else reaches verify.
func TestProjectPermissions(t *testing.T) {
	tests := []struct {
		name      string
		relayRole string
		wantRelay bool
	}{
		{"relay role set", relayRole, true},
		{"relay role empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := template.Load(projectTemplate, template.Options{
				ParameterOverrides: map[string]string{"RelayRoleArn": tt.relayRole},
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, rt := range s.Routes {
				c := template.APIGatewayCaller(template.RouteResource(rt))
				p, ok := s.Allowing(rt.Function, c)
				if !ok {
					t.Errorf("route %s: no permission lets API Gateway invoke %s", rt.Key(), rt.Function)
					continue
				}
				if p.LogicalID != rt.Function+rt.Event+"Permission" {
					t.Errorf("route %s admitted by %s, want SAM's %s%sPermission", rt.Key(), p.LogicalID, rt.Function, rt.Event)
				}
				if rt.Authorizer == "" {
					continue
				}
				az := s.Authorizers[rt.Authorizer]
				if _, ok := s.Allowing(az.Function, template.APIGatewayCaller(template.AuthorizerResource(az.Name))); !ok {
					t.Errorf("route %s: API Gateway may not invoke its authorizer %s", rt.Key(), az.Function)
				}
			}
			// The relay's role only reaches verify, through its own permission.
			relay := template.Caller{Principal: relayRole}
			for id := range s.Functions {
				p, ok := s.Allowing(id, relay)
				want := tt.wantRelay && id == "VerifyTokenFunction"
				if ok != want {
					t.Errorf("relay role may invoke %s = %v (%+v), want %v", id, ok, p, want)
				}
			}
			for _, p := range s.FunctionPermissions("VerifyTokenFunction") {
				if p.Principal != relayRole || p.LogicalID != "RelayInvokePermission" {
					t.Errorf("verify permission %+v, want only RelayInvokePermission for the relay", p)
				}
			}
			// A route's permission is scoped to its own method and path.
			if _, ok := s.Allowing("GetTokenFunction", template.APIGatewayCaller("$default/DELETE/api/token/{id}")); ok {
				t.Error("GetTokenFunction's permission admits DELETE /api/token/{id}")
			}
		})
	}
}

// writeFile writes a template into a fresh folder and returns its path.
func writeFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "template.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// permissionsHead is a template with an API, its authorizer and two
// functions, one with properties goformation does not know (LoggingConfig;
// a log group's RetentionInDays from a Number parameter); cases put
// authorizer settings at %s and append their permissions.
const permissionsHead = `Transform: AWS::Serverless-2016-10-31
Parameters:
  Days:
    Type: Number
    Default: 7
  Who:
    Type: String
    Default: ""
  Stage:
    Type: String
    Default: dev
Conditions:
  HasWho: !Not [!Equals [!Ref Who, ""]]
  IsProd: !Equals [!Ref Stage, prod]
  Both: !And [!Condition HasWho, !Condition IsProd]
  Either: !Or [!Condition HasWho, !Condition IsProd]
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      Auth:
        DefaultAuthorizer: Bearer
        Authorizers:
          Bearer:
            FunctionArn: !GetAtt Auth.Arn
            AuthorizerPayloadFormatVersion: "2.0"
            Identity: {Headers: [Authorization]}
%s
  Auth:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/
      LoggingConfig: {LogGroup: !Ref Logs}
  Logs:
    Type: AWS::Logs::LogGroup
    Properties:
      RetentionInDays: !Ref Days
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/
      Events:
        Get:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: GET, Path: "/items/{id}/"}
        Files:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: ANY, Path: "/files/{proxy+}", Auth: {Authorizer: NONE}}
`

func TestPermissions(t *testing.T) {
	other := template.Caller{Principal: "arn:aws:iam::123456789012:role/other"}
	type check struct {
		function string
		caller   template.Caller
		admitted bool
	}
	cases := []struct {
		name       string
		authorizer string
		resources  string
		params     map[string]string
		wantErr    string
		checks     []check
	}{
		{
			name: "routes only: no authorizer permission by default",
			checks: []check{
				{"Fn", template.APIGatewayCaller("$default/GET/items/{id}"), true},
				{"Fn", template.APIGatewayCaller("$default/GET/items/42"), true},
				{"Fn", template.APIGatewayCaller("$default/POST/items/{id}"), false},
				{"Fn", template.APIGatewayCaller("$default/DELETE/files/{proxy+}"), true},
				{"Fn", template.Caller{Principal: template.APIGatewayPrincipal}, false},
				{"Fn", template.Caller{Principal: "events.amazonaws.com", SourceARN: template.ExecuteAPIARN("$default/GET/items/1")}, false},
				{"Auth", template.APIGatewayCaller("authorizers/Bearer"), false},
			},
		},
		{
			name:       "EnableFunctionDefaultPermissions",
			authorizer: "            EnableFunctionDefaultPermissions: true",
			checks: []check{
				{"Auth", template.APIGatewayCaller("authorizers/Bearer"), true},
				{"Auth", template.APIGatewayCaller("$default/GET/items/{id}"), false},
				{"Fn", template.APIGatewayCaller("authorizers/Bearer"), false},
			},
		},
		{
			name:       "EnableFunctionDefaultPermissions false",
			authorizer: "            EnableFunctionDefaultPermissions: false",
			checks:     []check{{"Auth", template.APIGatewayCaller("authorizers/Bearer"), false}},
		},
		{
			name:       "EnableFunctionDefaultPermissions from a parameter",
			authorizer: "            EnableFunctionDefaultPermissions: !Ref Stage",
			wantErr:    "EnableFunctionDefaultPermissions",
		},
		{
			name: "explicit permission for the authorizer",
			resources: `  AuthPermission:
    Type: AWS::Lambda::Permission
    Properties:
      Action: lambda:InvokeFunction
      FunctionName: !Ref Auth
      Principal: apigateway.amazonaws.com
      SourceArn: !Sub arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/authorizers/*
`,
			checks: []check{
				{"Auth", template.APIGatewayCaller("authorizers/Bearer"), true},
				{"Auth", template.Caller{Principal: template.APIGatewayPrincipal, SourceARN: "arn:aws:execute-api:us-east-1:123456789012:otherapi/authorizers/x"}, false},
			},
		},
		{
			name: "condition off",
			resources: `  WhoPermission:
    Type: AWS::Lambda::Permission
    Condition: HasWho
    Properties:
      Action: lambda:InvokeFunction
      FunctionName: !GetAtt Fn.Arn
      Principal: !Ref Who
`,
			checks: []check{{"Fn", template.Caller{Principal: relayRole}, false}},
		},
		{
			name: "condition on",
			resources: `  WhoPermission:
    Type: AWS::Lambda::Permission
    Condition: HasWho
    Properties:
      Action: lambda:InvokeFunction
      FunctionName: !GetAtt Fn.Arn
      Principal: !Ref Who
`,
			params: map[string]string{"Who": relayRole},
			checks: []check{
				{"Fn", template.Caller{Principal: relayRole}, true},
				{"Fn", other, false},
				{"Auth", template.Caller{Principal: relayRole}, false},
			},
		},
		{
			name: "And, Or, long form",
			resources: `  BothPermission:
    Type: AWS::Lambda::Permission
    Condition: Both
    Properties: {Action: lambda:InvokeFunction, FunctionName: {"Fn::GetAtt": [Fn, Arn]}, Principal: {Ref: Who}}
  EitherPermission:
    Type: AWS::Lambda::Permission
    Condition: Either
    Properties: {Action: lambda:InvokeFunction, FunctionName: !Ref Auth, Principal: "123456789012"}
`,
			params: map[string]string{"Stage": "prod"},
			checks: []check{
				{"Auth", other, true},
				{"Auth", template.Caller{Principal: "arn:aws:sts::123456789012:assumed-role/other/session"}, true},
				{"Auth", template.Caller{Principal: "arn:aws:iam::210987654321:role/other"}, false},
				{"Auth", template.APIGatewayCaller("authorizers/Bearer"), false},
			},
		},
		{
			name: "account root principal, another action",
			resources: `  Root:
    Type: AWS::Lambda::Permission
    Properties: {Action: lambda:InvokeFunction, FunctionName: !Ref Fn, Principal: !Sub "arn:aws:iam::${AWS::AccountId}:root"}
  Read:
    Type: AWS::Lambda::Permission
    Properties: {Action: lambda:GetFunction, FunctionName: !Ref Auth, Principal: "*"}
`,
			checks: []check{
				{"Fn", other, true},
				{"Auth", other, false},
			},
		},
		{
			name: "literal function name",
			resources: `  Literal:
    Type: AWS::Lambda::Permission
    Properties: {Action: lambda:InvokeFunction, FunctionName: my-function, Principal: "*"}
`,
			wantErr: "Literal",
		},
		{
			name: "unknown condition",
			resources: `  Nope:
    Type: AWS::Lambda::Permission
    Condition: NoSuchCondition
    Properties: {Action: lambda:InvokeFunction, FunctionName: !Ref Fn, Principal: "*"}
`,
			wantErr: "NoSuchCondition",
		},
		{
			name: "empty principal",
			resources: `  Empty:
    Type: AWS::Lambda::Permission
    Properties: {Action: lambda:InvokeFunction, FunctionName: !Ref Fn, Principal: !Ref Who}
`,
			wantErr: "Principal",
		},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			body := strings.Replace(permissionsHead, "%s\n", tt.authorizer+"\n", 1) + tt.resources
			s, err := template.Load(writeFile(t, body), template.Options{ParameterOverrides: tt.params})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range tt.checks {
				if _, got := s.Allowing(c.function, c.caller); got != c.admitted {
					t.Errorf("%s invoked by %+v admitted = %v, want %v (permissions %+v)", c.function, c.caller, got, c.admitted, s.Permissions)
				}
			}
		})
	}
}

// The permissions SAM generates carry SAM's logical ids and source ARNs.
func TestSAMPermissionShapes(t *testing.T) {
	body := strings.Replace(permissionsHead, "%s\n", "            EnableFunctionDefaultPermissions: true\n", 1)
	s, err := template.Load(writeFile(t, body), template.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range s.Permissions {
		got[p.LogicalID] = p.Function + " " + p.Principal + " " + p.SourceARN
	}
	arn := "arn:aws:execute-api:us-east-1:123456789012:" + template.APIID
	want := map[string]string{
		"FnGetPermission":               "Fn apigateway.amazonaws.com " + arn + "/*/GET/items/*",
		"FnFilesPermission":             "Fn apigateway.amazonaws.com " + arn + "/*/*/files/*",
		"ApiBearerAuthorizerPermission": "Auth apigateway.amazonaws.com " + arn + "/authorizers/*",
	}
	if len(got) != len(want) {
		t.Errorf("permissions %v, want %v", got, want)
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("%s = %q, want %q", id, got[id], w)
		}
	}
}
