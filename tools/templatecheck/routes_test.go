package templatecheck_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// routes is every route of the HTTP API: the function behind it, and
// whether the Lambda authorizer guards it.
var routes = []struct {
	route      string
	function   string
	authorized bool
}{
	{"GET /", "ConsoleFunction", false},
	{"GET /assets/{proxy+}", "ConsoleFunction", false},
	{"GET /api/token", "ListTokensFunction", true},
	{"POST /api/token", "CreateTokenFunction", true},
	{"PUT /api/token", "UpdateTokenFunction", true},
	{"GET /api/token/search", "SearchTokensFunction", true},
	{"GET /api/token/{id}", "GetTokenFunction", true},
	{"DELETE /api/token/{id}", "DeleteTokenFunction", true},
	{"POST /api/token/batch", "BatchDeleteTokensFunction", true},
	{"POST /api/token/batch/keys", "RevealTokenKeysFunction", true},
	{"POST /api/token/{id}/key", "RevealTokenKeyFunction", true},
	{"POST /api/token/{id}/rotate", "RotateTokenFunction", true},
	// Authenticated by the sk- key itself, checked by the function.
	{"GET /api/usage/token", "UsageTokenFunction", false},
}

const (
	apiID = "TokenApi"
	// authorizer is the name of the HTTP API's Lambda authorizer.
	authorizer         = "UserAccessToken"
	authorizerFunction = "AuthorizerFunction"
	verifyFunction     = "VerifyTokenFunction"
	// executeAPI is the start of every execute-api ARN of this API.
	executeAPI = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${" + apiID + "}"
)

var pathParam = regexp.MustCompile(`\{[^}]*\}`)

// routeSourceArn is the SourceArn of the permission SAM gives API Gateway
// to invoke a route's function: any stage, the method, the path with its
// parameters as *.
func routeSourceArn(route string) string {
	method, path, _ := strings.Cut(route, " ")
	return executeAPI + "/*/" + method + pathParam.ReplaceAllString(path, "*")
}

// openAPIRoutes returns the HTTP API's OpenAPI body's operations by route
// key ("GET /api/token").
func openAPIRoutes(t *testing.T, s *stack) map[string]map[string]any {
	t.Helper()
	api := s.resource(t, apiID, "AWS::ApiGatewayV2::Api")
	paths, ok := dig(api.Properties, "Body", "paths").(map[string]any)
	if !ok {
		t.Fatalf("%s has no OpenAPI body paths: %s", apiID, jsonOf(api.Properties))
	}
	ops := map[string]map[string]any{}
	for path, item := range paths {
		methods, _ := item.(map[string]any)
		for method, op := range methods {
			m, _ := op.(map[string]any)
			ops[strings.ToUpper(method)+" "+path] = m
		}
	}
	return ops
}

// TestRoutes checks every route of the translated HTTP API: the routes are
// exactly those the service has, each is a Lambda proxy integration
// (payload 2.0) of its function, guarded by the authorizer or not as it
// should be, and has a Lambda permission letting API Gateway invoke that
// function for this API, method and path only.
func TestRoutes(t *testing.T) {
	s := translated(t)
	ops := openAPIRoutes(t, s)
	var got, want []string
	for route := range ops {
		got = append(got, route)
	}
	for _, r := range routes {
		want = append(want, r.route)
	}
	if !slices.Equal(sorted(got), sorted(want)) {
		t.Errorf("HTTP API routes = %v\nwant %v", sorted(got), sorted(want))
	}
	body := dig(s.Resources[apiID].Properties, "Body")
	if global := dig(body, "security"); global != nil {
		// Every route without its own security would inherit it.
		t.Errorf("API-wide security %s: routes are read one by one here", jsonOf(global))
	}
	schemes := asMap(dig(body, "components", "securitySchemes"))
	perms := s.permissions(t)

	for _, r := range routes {
		t.Run(r.route, func(t *testing.T) {
			op, ok := ops[r.route]
			if !ok {
				t.Fatal("no such route in the translated API")
			}
			integ := dig(op, "x-amazon-apigateway-integration")
			if got := dig(integ, "type"); got != "aws_proxy" {
				t.Errorf("integration type = %v, want aws_proxy", got)
			}
			if got := dig(integ, "payloadFormatVersion"); got != "2.0" {
				t.Errorf("payloadFormatVersion = %v, want 2.0", got)
			}
			uri, _ := render(dig(integ, "uri"))
			wantURI := "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${" + r.function + ".Arn}/invocations"
			if uri != wantURI {
				t.Errorf("integration uri = %q, want %q", uri, wantURI)
			}
			s.resource(t, r.function, "AWS::Lambda::Function")

			var guards []string
			for _, req := range asList(op["security"]) {
				for name := range asMap(req) {
					if _, defined := schemes[name]; defined {
						guards = append(guards, name)
					}
				}
			}
			wantGuards := []string(nil)
			if r.authorized {
				wantGuards = []string{authorizer}
			}
			if !slices.Equal(guards, wantGuards) {
				t.Errorf("authorizers of the route = %v, want %v (security %s)", guards, wantGuards, jsonOf(op["security"]))
			}

			wantPerm := permission{"lambda:InvokeFunction", "apigateway.amazonaws.com", routeSourceArn(r.route), ""}
			if !slices.Contains(perms[r.function], wantPerm) {
				t.Errorf("%s has no permission %v; it has %v", r.function, wantPerm, perms[r.function])
			}
		})
	}
}

// permission is an AWS::Lambda::Permission, its intrinsics rendered.
type permission struct {
	action, principal, sourceArn, condition string
}

func (p permission) String() string {
	s := fmt.Sprintf("%s to %s", p.action, p.principal)
	if p.sourceArn != "" {
		s += " from " + p.sourceArn
	}
	if p.condition != "" {
		s += " if " + p.condition
	}
	return s
}

// permissions returns the Lambda permissions of the stack by the function
// they open.
func (s *stack) permissions(t *testing.T) map[string][]permission {
	t.Helper()
	out := map[string][]permission{}
	for _, id := range s.OfType("AWS::Lambda::Permission") {
		r := s.Resources[id]
		fn := target(r.Properties["FunctionName"])
		if fn == "" {
			t.Errorf("%s: FunctionName %s names no function of the stack", id, jsonOf(r.Properties["FunctionName"]))
			continue
		}
		p := permission{condition: r.Condition}
		for _, f := range []struct {
			name string
			to   *string
		}{{"Action", &p.action}, {"Principal", &p.principal}, {"SourceArn", &p.sourceArn}} {
			v, set := r.Properties[f.name]
			if !set {
				continue
			}
			var ok bool
			if *f.to, ok = render(v); !ok {
				t.Errorf("%s: cannot read %s %s", id, f.name, jsonOf(v))
			}
		}
		out[fn] = append(out[fn], p)
	}
	return out
}

// TestLambdaPermissions checks that each function can be invoked by
// exactly whom it should: API Gateway, for this API and the function's
// routes, for the HTTP functions; API Gateway for this API's authorizers
// for the authorizer; the relay's role alone for the verify function, and
// only when RelayRoleArn is set. A missing permission is a 500 in AWS, an
// extra one a door left open.
func TestLambdaPermissions(t *testing.T) {
	s := translated(t)
	want := map[string][]permission{
		authorizerFunction: {{"lambda:InvokeFunction", "apigateway.amazonaws.com", executeAPI + "/authorizers/*", ""}},
		verifyFunction:     {{"lambda:InvokeFunction", "${RelayRoleArn}", "", "HasRelayRole"}},
	}
	for _, r := range routes {
		want[r.function] = append(want[r.function], permission{"lambda:InvokeFunction", "apigateway.amazonaws.com", routeSourceArn(r.route), ""})
	}
	got := s.permissions(t)
	for _, fn := range s.OfType("AWS::Lambda::Function") {
		if _, ok := want[fn]; !ok {
			want[fn] = nil
		}
	}
	for fn := range got {
		if _, ok := want[fn]; !ok {
			want[fn] = nil
		}
	}
	for fn, w := range want {
		t.Run(fn, func(t *testing.T) {
			g := got[fn]
			if !slices.Equal(sortedPermissions(g), sortedPermissions(w)) {
				t.Errorf("permissions:\n  got  %v\n  want %v", sortedPermissions(g), sortedPermissions(w))
			}
		})
	}
}

// TestAuthorizer checks the HTTP API's Lambda authorizer as AWS runs it:
// its function is the authorizer function (whose permission
// TestLambdaPermissions checks), it reads the Authorization header, and
// caches no verdict, so a revoked user access token fails at once.
func TestAuthorizer(t *testing.T) {
	s := translated(t)
	api := s.resource(t, apiID, "AWS::ApiGatewayV2::Api")
	schemes := asMap(dig(api.Properties, "Body", "components", "securitySchemes"))
	if len(schemes) != 1 {
		t.Fatalf("security schemes = %s, want %s alone", jsonOf(schemes), authorizer)
	}
	az := dig(schemes[authorizer], "x-amazon-apigateway-authorizer")
	tests := []struct {
		field string
		want  string
	}{
		{"type", `"request"`},
		{"authorizerPayloadFormatVersion", `"2.0"`},
		{"enableSimpleResponses", `true`},
		{"identitySource", `["$request.header.Authorization"]`},
		{"authorizerResultTtlInSeconds", `0`},
	}
	for _, tt := range tests {
		if got := dig(az, tt.field); !sameJSON(t, got, tt.want) {
			t.Errorf("authorizer %s = %s, want %s", tt.field, jsonOf(got), tt.want)
		}
	}
	uri, _ := render(dig(az, "authorizerUri"))
	if want := "functions/${" + authorizerFunction + ".Arn}/invocations"; !strings.HasSuffix(uri, want) {
		t.Errorf("authorizerUri = %q, want one ending %q", uri, want)
	}
}

func sortedPermissions(ps []permission) []string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return sorted(s)
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}
