package conformance_test

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/llmgw/token-service/tools/sam"
	"github.com/llmgw/token-service/tools/template"
)

// view is what a deployment does with the template, in a form both
// readings produce: the runner's (package template) and the SAM
// translator's CloudFormation.
type view struct {
	// Functions are the Lambda functions' logical ids, sorted.
	Functions []string
	// Routes maps a route key ("GET /api/token/{id}") to its function
	// and authorizer: "GetTokenFunction UserAccessToken" (or "<fn> -").
	Routes map[string]string
	// Authorizers maps an authorizer name to its function, identity
	// sources, cache seconds, payload version and response kind.
	Authorizers map[string]string
	// Permissions maps a permission's logical id to
	// "<function> <principal> <source ARN or ->".
	Permissions map[string]string
	// EnvNames are each function's environment variable names, sorted.
	EnvNames map[string][]string
	// EnvValues are each function's variables whose translated value is a
	// plain string or a parameter's value.
	EnvValues map[string]map[string]string
	// DynamoDB are each function's IAM statements on DynamoDB actions:
	// "<Effect> <actions> on <resources>", sorted.
	DynamoDB map[string][]string
}

// diff lists the differences between a (the runner's) and b (the
// translation's), one line each.
func (a view) diff(b view) []string {
	var out []string
	if !slices.Equal(a.Functions, b.Functions) {
		out = append(out, fmt.Sprintf("functions: runner %v, translation %v", a.Functions, b.Functions))
	}
	out = append(out, diffMaps("route", a.Routes, b.Routes)...)
	out = append(out, diffMaps("authorizer", a.Authorizers, b.Authorizers)...)
	out = append(out, diffMaps("permission", a.Permissions, b.Permissions)...)
	out = append(out, diffMaps("environment names of", joined(a.EnvNames), joined(b.EnvNames))...)
	// Values only where the translation has one to compare: a plain
	// string or a parameter's value.
	for _, fn := range b.Functions {
		for _, name := range slices.Sorted(maps.Keys(b.EnvValues[fn])) {
			got, ok := a.EnvValues[fn][name]
			if want := b.EnvValues[fn][name]; !ok || got != want {
				out = append(out, fmt.Sprintf("environment value of %s %s: runner %q, translation %q", fn, name, got, want))
			}
		}
	}
	out = append(out, diffMaps("DynamoDB statements of", joined(a.DynamoDB), joined(b.DynamoDB))...)
	return out
}

func joined(m map[string][]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = strings.Join(v, "; ")
	}
	return out
}

// diffMaps lists the keys whose values differ, a key missing on one side
// shown as <none>.
func diffMaps(what string, a, b map[string]string) []string {
	keys := slices.Sorted(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	var out []string
	for _, k := range keys {
		va, oka := a[k]
		vb, okb := b[k]
		if oka && okb && va == vb {
			continue
		}
		if !oka {
			va = "<none>"
		}
		if !okb {
			vb = "<none>"
		}
		out = append(out, fmt.Sprintf("%s %s: runner %q, translation %q", what, k, va, vb))
	}
	return out
}

// runnerView is the runner's reading of the template.
func runnerView(s *template.Stack) view {
	v := view{Routes: map[string]string{}, Authorizers: map[string]string{}, Permissions: map[string]string{},
		EnvNames: map[string][]string{}, EnvValues: map[string]map[string]string{}, DynamoDB: map[string][]string{}}
	v.Functions = slices.Sorted(maps.Keys(s.Functions))
	for _, rt := range s.Routes {
		v.Routes[rt.Key()] = rt.Function + " " + orDash(rt.Authorizer)
	}
	for name, az := range s.Authorizers {
		var sources []string
		for _, h := range az.IdentityHeaders {
			sources = append(sources, "header."+h)
		}
		for _, q := range az.IdentityQueryStrings {
			sources = append(sources, "querystring."+q)
		}
		v.Authorizers[name] = authorizerLine(az.Function, sources, int(az.ReauthorizeEvery.Seconds()), az.PayloadVersion, az.SimpleResponses)
	}
	for _, p := range s.Permissions {
		v.Permissions[p.LogicalID] = p.Function + " " + p.Principal + " " + orDash(p.SourceARN)
	}
	for id, fn := range s.Functions {
		v.EnvNames[id] = slices.Sorted(maps.Keys(fn.Env))
		v.EnvValues[id] = maps.Clone(fn.Env)
		v.DynamoDB[id] = nil // none is an answer too
		for _, st := range fn.DynamoDBStatements {
			v.DynamoDB[id] = append(v.DynamoDB[id], statementLine(st.Effect, st.Actions, st.Resources))
		}
		sort.Strings(v.DynamoDB[id])
	}
	return v
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func authorizerLine(function string, sources []string, ttl int, version string, simple bool) string {
	sort.Strings(sources)
	return fmt.Sprintf("%s identity=%s ttl=%d payload=%s simple=%v", function, strings.Join(sources, ","), ttl, version, simple)
}

func statementLine(effect string, actions, resources []string) string {
	actions = slices.Clone(actions)
	resources = slices.Clone(resources)
	for i := range actions {
		actions[i] = strings.ToLower(actions[i])
	}
	sort.Strings(actions)
	sort.Strings(resources)
	return effect + " " + strings.Join(actions, ",") + " on " + strings.Join(resources, ",")
}

// translatedView reads the SAM translator's CloudFormation the way AWS
// deploys it, with params over the parameter defaults and tables named as
// the runner names them.
func translatedView(t *sam.Template, params, tables map[string]string) (view, error) {
	e := &cfn{t: t, params: map[string]string{}, tables: tables, conds: map[string]bool{}}
	for name, p := range t.Parameters {
		if d, ok := p["Default"]; ok {
			e.params[name] = scalar(d)
		}
	}
	maps.Copy(e.params, params)
	v := view{Routes: map[string]string{}, Authorizers: map[string]string{}, Permissions: map[string]string{},
		EnvNames: map[string][]string{}, EnvValues: map[string]map[string]string{}, DynamoDB: map[string][]string{}}

	for _, id := range t.OfType("AWS::Lambda::Function") {
		if !e.exists(id) {
			continue
		}
		v.Functions = append(v.Functions, id)
		props := t.Resources[id].Properties
		env, _ := dig(props, "Environment", "Variables").(map[string]any)
		v.EnvNames[id] = slices.Sorted(maps.Keys(env))
		v.EnvValues[id] = map[string]string{}
		for name, val := range env {
			if s, ok := e.plainOrParameter(val); ok {
				v.EnvValues[id][name] = s
			}
		}
		role, err := e.roleOf(props)
		if err != nil {
			return view{}, fmt.Errorf("function %s: %w", id, err)
		}
		lines, err := e.dynamoDBStatements(role)
		if err != nil {
			return view{}, fmt.Errorf("function %s role %s: %w", id, role, err)
		}
		sort.Strings(lines)
		v.DynamoDB[id] = lines
	}

	apis := t.OfType("AWS::ApiGatewayV2::Api")
	if len(apis) != 1 {
		return view{}, fmt.Errorf("the translation has %d AWS::ApiGatewayV2::Api, want 1", len(apis))
	}
	body, _ := t.Resources[apis[0]].Properties["Body"].(map[string]any)
	if err := e.openAPI(body, &v); err != nil {
		return view{}, fmt.Errorf("api %s: %w", apis[0], err)
	}

	for _, id := range t.OfType("AWS::Lambda::Permission") {
		if !e.exists(id) {
			continue
		}
		p := t.Resources[id].Properties
		fn, err := e.functionOf(p["FunctionName"])
		if err != nil {
			return view{}, fmt.Errorf("permission %s: %w", id, err)
		}
		principal, err := e.str(p["Principal"])
		if err != nil {
			return view{}, fmt.Errorf("permission %s Principal: %w", id, err)
		}
		source := "-"
		if p["SourceArn"] != nil {
			if source, err = e.str(p["SourceArn"]); err != nil {
				return view{}, fmt.Errorf("permission %s SourceArn: %w", id, err)
			}
		}
		if a := scalar(p["Action"]); a != template.InvokeAction {
			return view{}, fmt.Errorf("permission %s: action %s", id, a)
		}
		v.Permissions[id] = fn + " " + principal + " " + source
	}
	return v, nil
}

// openAPI reads the routes and authorizers of the HTTP API's OpenAPI body.
func (e *cfn) openAPI(body map[string]any, v *view) error {
	schemes, _ := dig(body, "components", "securitySchemes").(map[string]any)
	for name, s := range schemes {
		az, _ := dig(s, "x-amazon-apigateway-authorizer").(map[string]any)
		if az == nil {
			return fmt.Errorf("security scheme %s is not a Lambda authorizer", name)
		}
		fn, err := e.integrationFunction(az["authorizerUri"])
		if err != nil {
			return fmt.Errorf("authorizer %s: %w", name, err)
		}
		var sources []string
		list, _ := az["identitySource"].([]any)
		for _, src := range list {
			sources = append(sources, strings.TrimPrefix(scalar(src), "$request."))
		}
		ttl, _ := strconv.Atoi(scalar(az["authorizerResultTtlInSeconds"]))
		simple, _ := az["enableSimpleResponses"].(bool)
		v.Authorizers[name] = authorizerLine(fn, sources, ttl, scalar(az["authorizerPayloadFormatVersion"]), simple)
	}
	paths, _ := body["paths"].(map[string]any)
	for path, ops := range paths {
		opsMap, _ := ops.(map[string]any)
		for method, op := range opsMap {
			integration := dig(op, "x-amazon-apigateway-integration")
			if integration == nil {
				continue
			}
			fn, err := e.integrationFunction(dig(integration, "uri"))
			if err != nil {
				return fmt.Errorf("%s %s: %w", method, path, err)
			}
			authorizer := "-"
			security, _ := dig(op, "security").([]any)
			for _, req := range security {
				for name := range req.(map[string]any) {
					if name != template.AuthNone {
						authorizer = name
					}
				}
			}
			method = strings.ToUpper(method)
			if method == "X-AMAZON-APIGATEWAY-ANY-METHOD" {
				method = "ANY"
			}
			v.Routes[method+" "+path] = fn + " " + authorizer
		}
	}
	return nil
}

// cfn evaluates the intrinsics of translated CloudFormation for one
// deployment: parameter values, conditions, and the ARNs the runner gives
// resources locally.
type cfn struct {
	t      *sam.Template
	params map[string]string
	tables map[string]string // logical id -> name
	conds  map[string]bool
}

// exists reports whether a resource's Condition (if any) holds.
func (e *cfn) exists(id string) bool {
	c := e.t.Resources[id].Condition
	if c == "" {
		return true
	}
	v, err := e.condition(c)
	return err == nil && v
}

func (e *cfn) condition(name string) (bool, error) {
	if v, ok := e.conds[name]; ok {
		return v, nil
	}
	def, ok := e.t.Conditions[name]
	if !ok {
		return false, fmt.Errorf("no condition %s", name)
	}
	v, err := e.boolean(def)
	if err != nil {
		return false, fmt.Errorf("condition %s: %w", name, err)
	}
	e.conds[name] = v
	return v, nil
}

func (e *cfn) boolean(x any) (bool, error) {
	m, ok := x.(map[string]any)
	if !ok || len(m) != 1 {
		return false, fmt.Errorf("not a condition: %v", x)
	}
	for fn, arg := range m {
		args, _ := arg.([]any)
		switch fn {
		case "Condition":
			return e.condition(scalar(arg))
		case "Fn::Equals":
			if len(args) != 2 {
				return false, fmt.Errorf("Fn::Equals %v", arg)
			}
			a, err := e.str(args[0])
			if err != nil {
				return false, err
			}
			b, err := e.str(args[1])
			return a == b, err
		case "Fn::Not":
			if len(args) != 1 {
				return false, fmt.Errorf("Fn::Not %v", arg)
			}
			v, err := e.boolean(args[0])
			return !v, err
		case "Fn::And", "Fn::Or":
			and := fn == "Fn::And"
			for _, a := range args {
				v, err := e.boolean(a)
				if err != nil {
					return false, err
				}
				if v != and {
					return v, nil
				}
			}
			return and, nil
		}
		return false, fmt.Errorf("unknown condition function %s", fn)
	}
	return false, nil
}

// str evaluates x to a string; intrinsics the runner cannot give a local
// value (a KMS key's ARN) are an error.
func (e *cfn) str(x any) (string, error) {
	m, ok := x.(map[string]any)
	if !ok {
		return scalar(x), nil
	}
	if len(m) != 1 {
		return "", fmt.Errorf("not a value: %v", x)
	}
	for fn, arg := range m {
		switch fn {
		case "Ref":
			return e.ref(scalar(arg))
		case "Fn::GetAtt":
			parts, _ := arg.([]any)
			if len(parts) != 2 {
				return "", fmt.Errorf("Fn::GetAtt %v", arg)
			}
			return e.getAtt(scalar(parts[0]), scalar(parts[1]))
		case "Fn::Sub":
			text, vars := arg, map[string]any{}
			if list, ok := arg.([]any); ok && len(list) == 2 {
				text = list[0]
				vars, _ = list[1].(map[string]any)
			}
			var err error
			out := subVar.ReplaceAllStringFunc(scalar(text), func(m string) string {
				name := m[2 : len(m)-1]
				var s string
				var e2 error
				if val, ok := vars[name]; ok {
					s, e2 = e.str(val)
				} else if id, attr, ok := strings.Cut(name, "."); ok && !strings.Contains(id, "::") {
					s, e2 = e.getAtt(id, attr)
				} else {
					s, e2 = e.ref(name)
				}
				if e2 != nil && err == nil {
					err = e2
				}
				return s
			})
			return out, err
		case "Fn::If":
			list, _ := arg.([]any)
			if len(list) != 3 {
				return "", fmt.Errorf("Fn::If %v", arg)
			}
			c, err := e.condition(scalar(list[0]))
			if err != nil {
				return "", err
			}
			if c {
				return e.str(list[1])
			}
			return e.str(list[2])
		case "Fn::Join":
			list, _ := arg.([]any)
			if len(list) != 2 {
				return "", fmt.Errorf("Fn::Join %v", arg)
			}
			items, _ := list[1].([]any)
			parts := make([]string, len(items))
			for i, it := range items {
				s, err := e.str(it)
				if err != nil {
					return "", err
				}
				parts[i] = s
			}
			return strings.Join(parts, scalar(list[0])), nil
		}
		return "", fmt.Errorf("intrinsic %s is not evaluated here", fn)
	}
	return "", nil
}

var subVar = regexp.MustCompile(`\$\{([^}!]+)\}`)

func (e *cfn) ref(name string) (string, error) {
	if v, ok := e.params[name]; ok {
		return v, nil
	}
	switch name {
	case "AWS::Region":
		return template.Region, nil
	case "AWS::AccountId":
		return template.AccountID, nil
	case "AWS::Partition":
		return "aws", nil
	case "AWS::URLSuffix":
		return "amazonaws.com", nil
	case "AWS::StackName":
		return "local", nil
	}
	r, ok := e.t.Resources[name]
	if !ok {
		return "", fmt.Errorf("Ref %s: no such parameter or resource", name)
	}
	switch r.Type {
	case "AWS::ApiGatewayV2::Api":
		return template.APIID, nil
	case "AWS::DynamoDB::Table":
		return e.tables[name], nil
	case "AWS::Lambda::Function":
		return name, nil
	}
	return "", fmt.Errorf("Ref %s (%s) has no local value", name, r.Type)
}

func (e *cfn) getAtt(id, attr string) (string, error) {
	r, ok := e.t.Resources[id]
	switch {
	case !ok:
		return "", fmt.Errorf("GetAtt %s.%s: no such resource", id, attr)
	case attr != "Arn":
	case r.Type == "AWS::Lambda::Function":
		return template.FunctionARN(id), nil
	case r.Type == "AWS::DynamoDB::Table":
		return template.TableARN(e.tables[id]), nil
	case r.Type == "AWS::IAM::Role":
		return template.RoleARN(id), nil
	}
	return "", fmt.Errorf("GetAtt %s.%s (%s) has no local value", id, attr, r.Type)
}

// plainOrParameter is an environment value's string when it is a plain
// string or a parameter's Ref.
func (e *cfn) plainOrParameter(x any) (string, bool) {
	if m, ok := x.(map[string]any); ok {
		name, isRef := m["Ref"].(string)
		v, isParam := e.params[name]
		return v, len(m) == 1 && isRef && isParam
	}
	return scalar(x), true
}

// functionOf reads a permission's FunctionName: Ref or GetAtt Arn of a function.
func (e *cfn) functionOf(x any) (string, error) {
	m, _ := x.(map[string]any)
	if ref, ok := m["Ref"].(string); ok {
		return ref, nil
	}
	if parts, ok := m["Fn::GetAtt"].([]any); ok && len(parts) == 2 && scalar(parts[1]) == "Arn" {
		return scalar(parts[0]), nil
	}
	return "", fmt.Errorf("FunctionName %v names no function of the template", x)
}

// integrationFunction reads the function of an integration or authorizer
// URI: Fn::Sub of .../functions/${F.Arn}/invocations, or with
// ${__FunctionArn__} bound to GetAtt F.Arn.
func (e *cfn) integrationFunction(uri any) (string, error) {
	s, err := e.str(uri)
	if err != nil {
		return "", err
	}
	fn, ok := strings.CutPrefix(s, "arn:aws:apigateway:"+template.Region+":lambda:path/2015-03-31/functions/"+template.FunctionARN(""))
	if !ok {
		return "", fmt.Errorf("uri %s invokes no function of the template", s)
	}
	fn, ok = strings.CutSuffix(fn, "/invocations")
	if !ok {
		return "", fmt.Errorf("uri %s", s)
	}
	return fn, nil
}

// roleOf is the logical id of the role a function runs as.
func (e *cfn) roleOf(props map[string]any) (string, error) {
	parts, _ := dig(props, "Role", "Fn::GetAtt").([]any)
	if len(parts) != 2 {
		return "", fmt.Errorf("Role %v is not a role of the template", props["Role"])
	}
	return scalar(parts[0]), nil
}

// dynamoDBStatements are the role's inline statements on DynamoDB actions
// (or "*"), each as a statementLine. A managed policy is allowed only when
// it grants no DynamoDB action.
func (e *cfn) dynamoDBStatements(role string) ([]string, error) {
	r, ok := e.t.Resources[role]
	if !ok || r.Type != "AWS::IAM::Role" {
		return nil, fmt.Errorf("no AWS::IAM::Role %s", role)
	}
	managed, _ := r.Properties["ManagedPolicyArns"].([]any)
	for _, m := range managed {
		arn, err := e.str(m)
		if err != nil {
			return nil, err
		}
		switch arn {
		case "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole", "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess", "":
		default:
			return nil, fmt.Errorf("managed policy %s: DynamoDB actions unknown", arn)
		}
	}
	var lines []string
	policies, _ := r.Properties["Policies"].([]any)
	for _, p := range policies {
		p, err := e.branch(p)
		if err != nil || p == nil {
			return nil, err
		}
		statements := dig(p, "PolicyDocument", "Statement")
		list, ok := statements.([]any)
		if !ok {
			list = []any{statements}
		}
		for _, st := range list {
			st, err := e.branch(st)
			if err != nil {
				return nil, err
			}
			m, _ := st.(map[string]any)
			if m == nil {
				continue
			}
			var actions []string
			for _, a := range stringsOf(m["Action"]) {
				if a == "*" || strings.HasPrefix(strings.ToLower(a), "dynamodb:") {
					actions = append(actions, a)
				}
			}
			if len(actions) == 0 {
				continue
			}
			var resources []string
			res := m["Resource"]
			items, ok := res.([]any)
			if !ok {
				items = []any{res}
			}
			for _, it := range items {
				s, err := e.str(it)
				if err != nil {
					return nil, err
				}
				resources = append(resources, s)
			}
			lines = append(lines, statementLine(scalar(m["Effect"]), actions, resources))
		}
	}
	return lines, nil
}

// branch resolves an Fn::If around a policy or statement (AWS::NoValue
// gives nil).
func (e *cfn) branch(x any) (any, error) {
	m, _ := x.(map[string]any)
	list, ok := m["Fn::If"].([]any)
	if !ok || len(m) != 1 {
		if ref, _ := m["Ref"].(string); ref == "AWS::NoValue" {
			return nil, nil
		}
		return x, nil
	}
	c, err := e.condition(scalar(list[0]))
	if err != nil {
		return nil, err
	}
	if c {
		return e.branch(list[1])
	}
	return e.branch(list[2])
}

func stringsOf(x any) []string {
	switch v := x.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, len(v))
		for i, s := range v {
			out[i] = scalar(s)
		}
		return out
	}
	return nil
}

// dig follows keys through nested maps.
func dig(x any, keys ...string) any {
	for _, k := range keys {
		m, ok := x.(map[string]any)
		if !ok {
			return nil
		}
		x = m[k]
	}
	return x
}

// scalar formats a JSON scalar as CloudFormation passes it: a string.
func scalar(x any) string {
	switch v := x.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case nil:
		return ""
	}
	return fmt.Sprint(x)
}
