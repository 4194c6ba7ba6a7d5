package template

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// APIGatewayPrincipal is the service principal API Gateway invokes Lambda
// functions as.
const APIGatewayPrincipal = "apigateway.amazonaws.com"

// InvokeAction is the Lambda action a permission must allow for a call.
const InvokeAction = "lambda:InvokeFunction"

// Permission is one statement of a function's resource-based policy: who
// may invoke it. A deployment of the template has exactly these, derived by
// SAM's rules: one per HttpApi event of a function (API Gateway, from this
// API's stage, method and path), one for an HttpApi Lambda authorizer only
// when its EnableFunctionDefaultPermissions is true, and every
// AWS::Lambda::Permission resource whose Condition holds with the resolved
// parameters. In one account an identity policy allowing
// lambda:InvokeFunction also lets its holder invoke; the runner assumes its
// callers have none (the relay's role must not), so only these admit them.
type Permission struct {
	// LogicalID is the permission's resource id, as SAM names the ones it
	// generates (ListTokensFunctionListPermission,
	// TokenApiUserAccessTokenAuthorizerPermission).
	LogicalID string
	// Function is the logical id of the function it opens.
	Function string
	// Action is "lambda:InvokeFunction" (or another action, which admits
	// no invocation).
	Action string
	// Principal is a service ("apigateway.amazonaws.com"), an account
	// ("123456789012" or its root ARN), an IAM ARN, or "*".
	Principal string
	// SourceARN, when set, admits only calls on behalf of a matching ARN
	// (ArnLike: * and ? are wildcards); SourceAccount only calls on behalf
	// of that account.
	SourceARN, SourceAccount string
}

// Caller is who invokes a function: a principal (a service, or an IAM
// role's ARN) and, for a service, the resource and account it acts for.
type Caller struct {
	Principal, SourceARN, SourceAccount string
}

// APIGatewayCaller is API Gateway invoking on behalf of the local HttpApi
// for resource: "$default/GET/api/token/{id}" (a route of the $default
// stage) or "authorizers/UserAccessToken".
func APIGatewayCaller(resource string) Caller {
	return Caller{Principal: APIGatewayPrincipal, SourceARN: ExecuteAPIARN(resource), SourceAccount: AccountID}
}

// ExecuteAPIARN is the execute-api ARN of a resource of the local HttpApi.
func ExecuteAPIARN(resource string) string {
	return "arn:aws:execute-api:" + Region + ":" + AccountID + ":" + APIID + "/" + resource
}

// RouteResource is the execute-api resource API Gateway invokes a route's
// function for: the $default stage, the method and the route's path.
func RouteResource(r Route) string {
	method := r.Method
	if method == "ANY" {
		method = "*"
	}
	return "$default/" + method + r.Path
}

// AuthorizerResource is the execute-api resource API Gateway invokes an
// authorizer for.
func AuthorizerResource(name string) string { return "authorizers/" + name }

// Admits reports whether p lets c invoke its function, as Lambda decides
// from a resource-based policy statement.
func (p Permission) Admits(c Caller) bool {
	if p.Action != InvokeAction && p.Action != "lambda:*" && p.Action != "*" {
		return false
	}
	if !principalMatches(p.Principal, c.Principal) {
		return false
	}
	if p.SourceARN != "" && (c.SourceARN == "" || !wildcardMatch(p.SourceARN, c.SourceARN)) {
		return false
	}
	if p.SourceAccount != "" && p.SourceAccount != c.SourceAccount {
		return false
	}
	return true
}

var accountID = regexp.MustCompile(`^[0-9]{12}$`)

// principalMatches reports whether a policy's principal covers the caller:
// "*" anyone; an account (its id or root ARN) every IAM identity of that
// account; a service or an ARN that exact principal.
func principalMatches(policy, caller string) bool {
	switch {
	case policy == "*":
		return true
	case policy == caller:
		return true
	}
	account := policy
	if a, ok := strings.CutPrefix(policy, "arn:aws:iam::"); ok && strings.HasSuffix(a, ":root") {
		account = strings.TrimSuffix(a, ":root")
	}
	if !accountID.MatchString(account) {
		return false
	}
	parts := strings.SplitN(caller, ":", 6)
	return len(parts) == 6 && parts[0] == "arn" && (parts[2] == "iam" || parts[2] == "sts") && parts[4] == account
}

// Allowing returns the first of function's permissions that admits c.
func (s *Stack) Allowing(function string, c Caller) (Permission, bool) {
	for _, p := range s.Permissions {
		if p.Function == function && p.Admits(c) {
			return p, true
		}
	}
	return Permission{}, false
}

// FunctionPermissions returns function's permissions.
func (s *Stack) FunctionPermissions(function string) []Permission {
	var out []Permission
	for _, p := range s.Permissions {
		if p.Function == function {
			out = append(out, p)
		}
	}
	return out
}

// loadPermissions derives Permissions (see Permission) from the routes,
// the authorizers and the template's AWS::Lambda::Permission resources.
func (s *Stack) loadPermissions(data []byte, r *resolver) error {
	for _, rt := range s.Routes {
		s.Permissions = append(s.Permissions, Permission{
			LogicalID: rt.Function + rt.Event + "Permission",
			Function:  rt.Function,
			Action:    InvokeAction,
			Principal: APIGatewayPrincipal,
			SourceARN: ExecuteAPIARN(samRouteResource(rt)),
		})
	}
	for name, az := range s.Authorizers {
		if !az.DefaultPermissions {
			continue
		}
		s.Permissions = append(s.Permissions, Permission{
			LogicalID: s.APILogicalID + name + "AuthorizerPermission",
			Function:  az.Function,
			Action:    InvokeAction,
			Principal: APIGatewayPrincipal,
			SourceARN: ExecuteAPIARN("authorizers/*"),
		})
	}

	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("read yaml: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	conds := newConditions(mapGet(doc.Content[0], "Conditions"), r)
	resources := mapGet(doc.Content[0], "Resources")
	if resources != nil && resources.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(resources.Content); i += 2 {
			id, res := resources.Content[i].Value, resources.Content[i+1]
			if typ := mapGet(res, "Type"); typ == nil || typ.Value != typePermission {
				continue
			}
			p, ok, err := s.explicitPermission(id, res, r, conds)
			if err != nil {
				return fmt.Errorf("permission %s: %w", id, err)
			}
			if ok {
				s.Permissions = append(s.Permissions, p)
			}
		}
	}
	sort.Slice(s.Permissions, func(i, j int) bool {
		a, b := s.Permissions[i], s.Permissions[j]
		if a.Function != b.Function {
			return a.Function < b.Function
		}
		return a.LogicalID < b.LogicalID
	})
	return nil
}

// samRouteResource is the resource of SAM's permission for an HttpApi
// event (samtranslator HttpApi._get_permission): every stage, the method
// ("*" for ANY), the path without a trailing slash and with each {param}
// and {proxy+} as "*"; the $default route has no path.
func samRouteResource(rt Route) string {
	path := rt.Path
	if len(path) > 1 {
		path = strings.TrimSuffix(path, "/")
	}
	method := strings.ToUpper(rt.Method)
	if method == "ANY" {
		method = "*"
	}
	if path == "$default" {
		return "*/" + method
	}
	return "*/" + method + pathParam.ReplaceAllString(path, "*")
}

var pathParam = regexp.MustCompile(`\{([a-zA-Z0-9._-]+|proxy\+)\}`)

// explicitPermission reads one AWS::Lambda::Permission resource; ok is
// false when its Condition does not hold.
func (s *Stack) explicitPermission(id string, res *yaml.Node, r *resolver, conds *conditions) (Permission, bool, error) {
	if c := mapGet(res, "Condition"); c != nil {
		holds, err := conds.eval(c.Value)
		if err != nil {
			return Permission{}, false, err
		}
		if !holds {
			return Permission{}, false, nil
		}
	}
	props := mapGet(res, "Properties")
	fn, err := s.permissionFunction(mapGet(props, "FunctionName"))
	if err != nil {
		return Permission{}, false, fmt.Errorf("FunctionName: %w", err)
	}
	p := Permission{LogicalID: id, Function: fn}
	if p.Action, err = r.str(mapGet(props, "Action")); err != nil {
		return Permission{}, false, fmt.Errorf("property Action: %w", err)
	}
	if p.Principal, err = r.str(mapGet(props, "Principal")); err != nil {
		return Permission{}, false, fmt.Errorf("property Principal: %w", err)
	}
	for _, opt := range []struct {
		key string
		dst *string
	}{{"SourceArn", &p.SourceARN}, {"SourceAccount", &p.SourceAccount}} {
		if n := mapGet(props, opt.key); n != nil {
			if *opt.dst, err = r.str(n); err != nil {
				return Permission{}, false, fmt.Errorf("%s: %w", opt.key, err)
			}
		}
	}
	for _, key := range []string{"PrincipalOrgID", "FunctionUrlAuthType", "EventSourceToken"} {
		if mapGet(props, key) != nil {
			return Permission{}, false, fmt.Errorf("%s is not supported by the runner", key)
		}
	}
	return p, true, nil
}

// permissionFunction reads a permission's FunctionName: !GetAtt F.Arn or
// !Ref F of a function of the template.
func (s *Stack) permissionFunction(n *yaml.Node) (string, error) {
	name, arg := intrinsic(n)
	id := ""
	switch name {
	case "Ref":
		id = arg.Value
	case "Fn::GetAtt":
		attr := ""
		if arg.Kind == yaml.SequenceNode && len(arg.Content) == 2 {
			id, attr = arg.Content[0].Value, arg.Content[1].Value
		} else {
			id, attr, _ = strings.Cut(arg.Value, ".")
		}
		if attr != "Arn" {
			return "", fmt.Errorf("!GetAtt %s.%s: want the function's Arn", id, attr)
		}
	default:
		return "", fmt.Errorf("want !GetAtt <function>.Arn or !Ref <function>: the runner cannot tell which function a literal name is")
	}
	if s.Functions[id] == nil {
		return "", fmt.Errorf("%s is not a function of the template", id)
	}
	return id, nil
}

// conditions evaluates the template's Conditions with the resolved
// parameters: Fn::Equals, Fn::Not, Fn::And, Fn::Or and Condition.
type conditions struct {
	defs   *yaml.Node
	r      *resolver
	values map[string]bool
	busy   map[string]bool
}

func newConditions(defs *yaml.Node, r *resolver) *conditions {
	return &conditions{defs: defs, r: r, values: map[string]bool{}, busy: map[string]bool{}}
}

// eval returns the value of the named condition.
func (c *conditions) eval(name string) (bool, error) {
	if v, ok := c.values[name]; ok {
		return v, nil
	}
	def := mapGet(c.defs, name)
	if def == nil {
		return false, fmt.Errorf("condition %s is not in Conditions", name)
	}
	if c.busy[name] {
		return false, fmt.Errorf("condition %s refers to itself", name)
	}
	c.busy[name] = true
	v, err := c.expr(def)
	delete(c.busy, name)
	if err != nil {
		return false, fmt.Errorf("condition %s: %w", name, err)
	}
	c.values[name] = v
	return v, nil
}

// expr evaluates one condition expression.
func (c *conditions) expr(n *yaml.Node) (bool, error) {
	name, arg := intrinsic(n)
	if name == "Condition" {
		return c.eval(arg.Value)
	}
	if arg == nil || arg.Kind != yaml.SequenceNode {
		return false, fmt.Errorf("line %d: want Fn::Equals, Fn::Not, Fn::And, Fn::Or or Condition with a list", n.Line)
	}
	args := arg.Content
	switch name {
	case "Fn::Equals":
		if len(args) != 2 {
			return false, fmt.Errorf("line %d: Fn::Equals wants two values", n.Line)
		}
		a, err := c.value(args[0])
		if err != nil {
			return false, err
		}
		b, err := c.value(args[1])
		if err != nil {
			return false, err
		}
		return a == b, nil
	case "Fn::Not":
		if len(args) != 1 {
			return false, fmt.Errorf("line %d: Fn::Not wants one condition", n.Line)
		}
		v, err := c.expr(args[0])
		return !v, err
	case "Fn::And", "Fn::Or":
		if len(args) < 2 || len(args) > 10 {
			return false, fmt.Errorf("line %d: %s wants 2 to 10 conditions", n.Line, name)
		}
		and := name == "Fn::And"
		for _, a := range args {
			v, err := c.expr(a)
			if err != nil {
				return false, err
			}
			if v != and {
				return v, nil
			}
		}
		return and, nil
	}
	return false, fmt.Errorf("line %d: %q is not a condition function", n.Line, name)
}

// value resolves an Fn::Equals operand to the string CloudFormation
// compares: a scalar as written, a parameter's value (empty included).
func (c *conditions) value(n *yaml.Node) (string, error) {
	if name, arg := intrinsic(n); name == "Ref" {
		if v, ok := c.r.params[arg.Value]; ok {
			return v, nil
		}
	}
	return c.r.str(n)
}
