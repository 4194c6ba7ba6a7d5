package templatecheck_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestFunctionLogs checks every function's logging: JSON lines into a log
// group of its own that the stack creates with the operator's retention
// (LoggingConfig.LogGroup, so an existing /aws/lambda/<name> group of a
// deployed stack cannot collide), and a role that may write to it.
func TestFunctionLogs(t *testing.T) {
	s := translated(t)
	owner := map[string]string{}
	for _, fn := range s.OfType("AWS::Lambda::Function") {
		t.Run(fn, func(t *testing.T) {
			lc := s.Resources[fn].Properties["LoggingConfig"]
			if got := dig(lc, "LogFormat"); got != "JSON" {
				t.Errorf("LogFormat = %v, want JSON", got)
			}
			group := target(dig(lc, "LogGroup"))
			if group == "" {
				t.Fatalf("LogGroup = %s, want a Ref to a log group of the stack", jsonOf(dig(lc, "LogGroup")))
			}
			checkLogGroup(t, s, group)
			if other, ok := owner[group]; ok {
				t.Errorf("log group %s shared with %s", group, other)
			}
			owner[group] = fn
			role := s.roleOf(t, fn)
			basic := "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
			if !slices.Contains(stringList(s.Resources[role].Properties["ManagedPolicyArns"]), basic) {
				t.Errorf("role %s lacks %s: the function could not write its logs", role, basic)
			}
		})
	}
}

// checkLogGroup checks that id is a log group of the stack whose retention
// is the LogRetentionDays parameter.
func checkLogGroup(t *testing.T, s *stack, id string) {
	t.Helper()
	g := s.resource(t, id, "AWS::Logs::LogGroup")
	if got, _ := render(g.Properties["RetentionInDays"]); got != "${LogRetentionDays}" {
		t.Errorf("%s RetentionInDays = %s, want the LogRetentionDays parameter", id, jsonOf(g.Properties["RetentionInDays"]))
	}
}

// stage returns the HTTP API's stage.
func (s *stack) stage(t *testing.T) map[string]any {
	t.Helper()
	id, st := s.only(t, "AWS::ApiGatewayV2::Stage")
	if got := target(st.Properties["ApiId"]); got != apiID {
		t.Fatalf("%s is a stage of %q, want %s", id, got, apiID)
	}
	return st.Properties
}

var contextVariable = regexp.MustCompile(`\$[A-Za-z][A-Za-z0-9_.]*`)

// TestAccessLog checks the HTTP API's access log: into a log group of the
// stack, one JSON object per request (once API Gateway writes each
// $context variable as a string) with what an operator needs to follow a
// request, and never a credential: no header (a usage call carries the
// sk- key in Authorization) nor the query string (a search may carry a key
// fragment).
func TestAccessLog(t *testing.T) {
	s := translated(t)
	als := s.stage(t)["AccessLogSettings"]
	if got := target(dig(als, "DestinationArn")); got != "" {
		checkLogGroup(t, s, got)
	} else {
		t.Errorf("DestinationArn = %s, want a log group of the stack", jsonOf(dig(als, "DestinationArn")))
	}
	format, ok := dig(als, "Format").(string)
	if !ok {
		t.Fatalf("access log Format = %s, want a string", jsonOf(dig(als, "Format")))
	}
	vars := contextVariable.FindAllString(format, -1)
	var line map[string]any
	if err := json.Unmarshal([]byte(contextVariable.ReplaceAllString(format, "-")), &line); err != nil {
		t.Errorf("access log line is not a JSON object with every variable quoted: %v\n%s", err, format)
	}

	for _, want := range []string{
		"$context.requestId",
		"$context.routeKey",
		"$context.status",
		"$context.responseLatency",
		"$context.integrationErrorMessage",
		"$context.authorizer.error",
	} {
		t.Run(want, func(t *testing.T) {
			if !slices.Contains(vars, want) {
				t.Errorf("access log lacks %s: %s", want, format)
			}
		})
	}
	for _, v := range vars {
		lower := strings.ToLower(v)
		if !strings.HasPrefix(v, "$context.") ||
			strings.Contains(lower, "header") ||
			strings.Contains(lower, "authorization") ||
			strings.Contains(lower, "query") ||
			strings.HasPrefix(lower, "$context.identity.") && v != "$context.identity.sourceIp" {
			t.Errorf("access log writes %s, which may carry a credential", v)
		}
	}
}

// TestThrottling checks the stage's throttling: every route at
// ApiThrottleRate/Burst by default, and the routes an attacker aims at
// (the key-authenticated usage route, the key reveals) at the stricter
// SensitiveThrottleRate/Burst; each throttled route exists (API Gateway
// refuses a stage naming an unknown route), and the stricter defaults are
// lower.
func TestThrottling(t *testing.T) {
	s := translated(t)
	st := s.stage(t)
	ops := openAPIRoutes(t, s)
	tests := []struct {
		route       string // "" for DefaultRouteSettings
		rate, burst string
	}{
		{"", "ApiThrottleRate", "ApiThrottleBurst"},
		{"GET /api/usage/token", "SensitiveThrottleRate", "SensitiveThrottleBurst"},
		{"POST /api/token/{id}/key", "SensitiveThrottleRate", "SensitiveThrottleBurst"},
		{"POST /api/token/batch/keys", "SensitiveThrottleRate", "SensitiveThrottleBurst"},
	}
	for _, tt := range tests {
		name := tt.route
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			settings := st["DefaultRouteSettings"]
			if tt.route != "" {
				settings = dig(st, "RouteSettings", tt.route)
				if _, ok := ops[tt.route]; !ok {
					t.Errorf("no route %s in the API", tt.route)
				}
			}
			for _, f := range []struct{ field, param string }{{"ThrottlingRateLimit", tt.rate}, {"ThrottlingBurstLimit", tt.burst}} {
				if got, _ := render(dig(settings, f.field)); got != "${"+f.param+"}" {
					t.Errorf("%s = %s, want the %s parameter", f.field, jsonOf(dig(settings, f.field)), f.param)
				}
			}
		})
	}
	for route := range asMap(st["RouteSettings"]) {
		if !slices.ContainsFunc(tests, func(tt struct{ route, rate, burst string }) bool { return tt.route == route }) {
			t.Errorf("RouteSettings for %s: untested", route)
		}
	}
	for _, p := range [][2]string{{"SensitiveThrottleRate", "ApiThrottleRate"}, {"SensitiveThrottleBurst", "ApiThrottleBurst"}} {
		if strict, normal := s.defaultNumber(t, p[0]), s.defaultNumber(t, p[1]); strict >= normal {
			t.Errorf("%s default %v, not below %s default %v", p[0], strict, p[1], normal)
		}
	}
}

// defaultNumber returns the default of a Number parameter.
func (s *stack) defaultNumber(t *testing.T, name string) float64 {
	t.Helper()
	p, ok := s.Parameters[name]
	if !ok {
		t.Fatalf("no parameter %s", name)
	}
	n, err := strconv.ParseFloat(fmt.Sprint(p["Default"]), 64)
	if err != nil {
		t.Fatalf("%s default %v: %v", name, p["Default"], err)
	}
	return n
}

// TestVerifyReservedConcurrency checks that the verify function reserves
// VerifyReservedConcurrency only when it is not 0, its default (a new
// account may have too little concurrency to reserve any).
func TestVerifyReservedConcurrency(t *testing.T) {
	s := translated(t)
	fn := s.resource(t, verifyFunction, "AWS::Lambda::Function")
	if got, want := fn.Properties["ReservedConcurrentExecutions"], `{"Fn::If": ["ReserveVerify", {"Ref": "VerifyReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}`; !sameJSON(t, got, want) {
		t.Errorf("ReservedConcurrentExecutions = %s, want %s", jsonOf(got), want)
	}
	if got := s.defaultNumber(t, "VerifyReservedConcurrency"); got != 0 {
		t.Errorf("VerifyReservedConcurrency default %v, want 0", got)
	}
	for _, id := range s.OfType("AWS::Lambda::Function") {
		if _, ok := s.Resources[id].Properties["ReservedConcurrentExecutions"]; ok && id != verifyFunction {
			t.Errorf("%s reserves concurrency too", id)
		}
	}
}

// TestConditions checks the conditions the optional parts of the stack
// hang on.
func TestConditions(t *testing.T) {
	s := translated(t)
	tests := []struct {
		name string
		want string
	}{
		{"HasRelayRole", `{"Fn::Not": [{"Fn::Equals": [{"Ref": "RelayRoleArn"}, ""]}]}`},
		{"ReserveVerify", `{"Fn::Not": [{"Fn::Equals": [{"Ref": "VerifyReservedConcurrency"}, 0]}]}`},
		{"TracingOn", `{"Fn::Equals": [{"Ref": "Tracing"}, "true"]}`},
		{"HasAlarmEmail", `{"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.Conditions[tt.name]; !sameJSON(t, got, tt.want) {
				t.Errorf("condition = %s, want %s", jsonOf(got), tt.want)
			}
		})
	}
}

// TestAlarms checks that an alarm watches each thing that pages an
// operator, and notifies the alarm topic when there is one (AlarmEmail
// set) and nothing otherwise.
func TestAlarms(t *testing.T) {
	s := translated(t)
	tests := []struct {
		name      string
		namespace string
		metrics   []string // every one of them is watched
		resource  string   // the dimension's value refers to it
	}{
		{"verify errors", "AWS/Lambda", []string{"Errors"}, verifyFunction},
		{"verify throttles", "AWS/Lambda", []string{"Throttles"}, verifyFunction},
		{"authorizer errors", "AWS/Lambda", []string{"Errors"}, authorizerFunction},
		{"authorizer throttles", "AWS/Lambda", []string{"Throttles"}, authorizerFunction},
		{"API 5xx", "AWS/ApiGateway", []string{"5xx"}, apiID},
		{"DynamoDB throttles", "AWS/DynamoDB", []string{"ReadThrottleEvents", "WriteThrottleEvents"}, "TokensTable"},
		{"DynamoDB system errors", "AWS/DynamoDB", []string{"SystemErrors"}, "TokensTable"},
	}
	const notify = `{"Fn::If": ["HasAlarmEmail", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]}`
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var found []string
			for _, id := range s.OfType("AWS::CloudWatch::Alarm") {
				if watchesAll(s.Resources[id].Properties, tt.namespace, tt.metrics, tt.resource) {
					found = append(found, id)
				}
			}
			if len(found) == 0 {
				t.Fatalf("no alarm on %s %v of %s", tt.namespace, tt.metrics, tt.resource)
			}
			for _, id := range found {
				props := s.Resources[id].Properties
				for _, f := range []string{"AlarmActions", "OKActions"} {
					if !sameJSON(t, props[f], notify) {
						t.Errorf("%s %s = %s, want %s", id, f, jsonOf(props[f]), notify)
					}
				}
			}
		})
	}
	topic := s.resource(t, "AlarmTopic", "AWS::SNS::Topic")
	if topic.Condition != "HasAlarmEmail" {
		t.Errorf("AlarmTopic condition %q, want HasAlarmEmail", topic.Condition)
	}
}

// watchesAll reports whether the alarm with properties props watches each
// of metrics in namespace for resource: as its single metric, as a metric
// of its metric math, or named in a Metrics Insights query.
func watchesAll(props map[string]any, namespace string, metrics []string, resource string) bool {
	type watched struct{ namespace, metric string }
	seen := map[watched]bool{}
	dimensionsName := func(dims any) bool {
		for _, d := range asList(dims) {
			if target(dig(d, "Value")) == resource {
				return true
			}
		}
		return false
	}
	if ns, ok := props["Namespace"].(string); ok && dimensionsName(props["Dimensions"]) {
		m, _ := props["MetricName"].(string)
		seen[watched{ns, m}] = true
	}
	for _, q := range asList(props["Metrics"]) {
		if m := dig(q, "MetricStat", "Metric"); m != nil && dimensionsName(dig(m, "Dimensions")) {
			ns, _ := dig(m, "Namespace").(string)
			name, _ := dig(m, "MetricName").(string)
			seen[watched{ns, name}] = true
		}
		expr, _ := render(dig(q, "Expression"))
		if strings.Contains(expr, `"`+namespace+`"`) && strings.Contains(expr, "${"+resource+"}") {
			for _, m := range metrics {
				if strings.Contains(expr, "("+m+")") {
					seen[watched{namespace, m}] = true
				}
			}
		}
	}
	for _, m := range metrics {
		if !seen[watched{namespace, m}] {
			return false
		}
	}
	return true
}

// TestSettings checks single settings of the production stack.
func TestSettings(t *testing.T) {
	s := translated(t)
	tests := []struct {
		resource string
		path     []string // under Properties
		want     string   // JSON
	}{
		{"TokensTable", []string{"DeletionProtectionEnabled"}, `true`},
		{"TokensTable", []string{"PointInTimeRecoverySpecification", "PointInTimeRecoveryEnabled"}, `true`},
		{"TokensTable", []string{"BillingMode"}, `"PAY_PER_REQUEST"`},
		{"TokensTable", []string{"TimeToLiveSpecification"}, `{"AttributeName": "expires_at", "Enabled": true}`},
		{"SealingKmsKey", []string{"EnableKeyRotation"}, `true`},
		{"TokenApiApiGatewayDefaultStage", []string{"StageName"}, `"$default"`},
		{"TokenApiApiGatewayDefaultStage", []string{"AutoDeploy"}, `true`},
	}
	for _, tt := range tests {
		t.Run(tt.resource+"."+strings.Join(tt.path, "."), func(t *testing.T) {
			r, ok := s.Resources[tt.resource]
			if !ok {
				t.Fatalf("no resource %s", tt.resource)
			}
			if got := dig(r.Properties, tt.path...); !sameJSON(t, got, tt.want) {
				t.Errorf("got %s, want %s", jsonOf(got), tt.want)
			}
		})
	}
}

// TestRetained checks that deleting the stack, or a change that would
// replace them, keeps the table and the key that seals its keys (without
// the key, no stored key can be revealed again).
func TestRetained(t *testing.T) {
	s := translated(t)
	for _, id := range []string{"TokensTable", sealingKey} {
		t.Run(id, func(t *testing.T) {
			p, ok := s.policies[id]
			if !ok {
				t.Fatalf("no resource %s", id)
			}
			if p.DeletionPolicy != "Retain" || p.UpdateReplacePolicy != "Retain" {
				t.Errorf("DeletionPolicy %q, UpdateReplacePolicy %q, want Retain for both", p.DeletionPolicy, p.UpdateReplacePolicy)
			}
		})
	}
}

// TestNoSecretInEnvironment checks that no function's environment holds a
// secret: SEALING_KEY (the local runs' development key) is empty in AWS,
// and nothing is taken from a NoEcho parameter.
func TestNoSecretInEnvironment(t *testing.T) {
	s := translated(t)
	for _, fn := range s.OfType("AWS::Lambda::Function") {
		t.Run(fn, func(t *testing.T) {
			vars := asMap(dig(s.Resources[fn].Properties, "Environment", "Variables"))
			if v, ok := vars["SEALING_KEY"]; ok && v != "" {
				t.Errorf("SEALING_KEY = %s, want empty", jsonOf(v))
			}
			for name, v := range vars {
				if p := target(v); p != "" && s.Parameters[p]["NoEcho"] != nil {
					t.Errorf("%s from the NoEcho parameter %s", name, p)
				}
			}
		})
	}
}

// TestParameters checks each parameter's rules the way CloudFormation
// applies them, so that `sam deploy --guided` answered with Enter
// throughout deploys (every default is accepted) and a broken value is
// refused at deploy time.
func TestParameters(t *testing.T) {
	s := translated(t)
	for name, p := range s.Parameters {
		t.Run(name+" default", func(t *testing.T) {
			def, ok := p["Default"]
			if !ok {
				t.Fatal("no default: `sam deploy --guided` would force an answer")
			}
			if err := checkParameter(p, fmt.Sprint(def)); err != nil {
				t.Errorf("default %q refused: %v", fmt.Sprint(def), err)
			}
			if p["NoEcho"] != nil {
				t.Error("NoEcho: the stack takes no secret from the operator")
			}
		})
	}
	tests := []struct {
		param, value string
		ok           bool
	}{
		{"RelayRoleArn", "arn:aws:iam::123456789012:role/relay", true},
		{"RelayRoleArn", "arn:aws:iam::123456789012:role/service-role/relay-prod", true},
		{"RelayRoleArn", "arn:aws-cn:iam::123456789012:role/relay", true},
		{"RelayRoleArn", "arn:aws:iam::123456789012:user/relay", false},
		{"RelayRoleArn", "relay", false},
		{"RelayRoleArn", "*", false},
		{"AlarmEmail", "ops@example.com", true},
		{"AlarmEmail", "ops", false},
		{"AlarmEmail", "ops@example", false},
		{"VerifyReservedConcurrency", "50", true},
		{"VerifyReservedConcurrency", "-1", false},
		{"Tracing", "true", true},
		{"Tracing", "yes", false},
		{"LogRetentionDays", "14", true},
		{"LogRetentionDays", "10", false},
		{"LogLevel", "TRACE", false},
	}
	for _, tt := range tests {
		t.Run(tt.param+"="+tt.value, func(t *testing.T) {
			p, ok := s.Parameters[tt.param]
			if !ok {
				t.Fatalf("no parameter %s", tt.param)
			}
			err := checkParameter(p, tt.value)
			if got := err == nil; got != tt.ok {
				t.Errorf("accepted = %v (%v), want %v", got, err, tt.ok)
			}
		})
	}
}

// checkParameter applies a parameter's AllowedPattern (matching the whole
// value), AllowedValues, MinValue and MaxValue to value.
func checkParameter(p map[string]any, value string) error {
	if pat, ok := p["AllowedPattern"].(string); ok {
		re, err := regexp.Compile(`^(?:` + pat + `)$`)
		if err != nil {
			return fmt.Errorf("AllowedPattern %q: %v", pat, err)
		}
		if !re.MatchString(value) {
			return fmt.Errorf("does not match %q", pat)
		}
	}
	if allowed, ok := p["AllowedValues"].([]any); ok {
		if !slices.ContainsFunc(allowed, func(a any) bool { return fmt.Sprint(a) == value }) {
			return fmt.Errorf("not one of %v", allowed)
		}
	}
	for _, bound := range []string{"MinValue", "MaxValue"} {
		b, ok := p[bound]
		if !ok {
			continue
		}
		limit, err := strconv.ParseFloat(fmt.Sprint(b), 64)
		if err != nil {
			return fmt.Errorf("%s %v: %v", bound, b, err)
		}
		n, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return fmt.Errorf("not a number")
		}
		if bound == "MinValue" && n < limit || bound == "MaxValue" && n > limit {
			return fmt.Errorf("outside %s %v", bound, b)
		}
	}
	return nil
}

// TestOutputs checks the stack's outputs an operator needs after a deploy.
func TestOutputs(t *testing.T) {
	s := translated(t)
	tests := []struct {
		name string
		want string // rendered
	}{
		{"ApiUrl", "https://${" + apiID + "}.execute-api.${AWS::Region}.${AWS::URLSuffix}"},
		{"TableName", "${TokensTable}"},
		{"SealingKeyArn", "${" + sealingKey + ".Arn}"},
		{"VerifyFunctionArn", "${" + verifyFunction + ".Arn}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, ok := s.Outputs[tt.name]
			if !ok {
				t.Fatal("no such output")
			}
			if got, _ := render(out["Value"]); got != tt.want {
				t.Errorf("value = %s, want %s", jsonOf(out["Value"]), tt.want)
			}
		})
	}
}
