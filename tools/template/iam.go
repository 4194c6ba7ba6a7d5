package template

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Statement is one statement of a function's IAM policies that names
// DynamoDB actions, read from the template's Policies with its resources
// resolved to local ARNs.
type Statement struct {
	// Effect is "Allow" or "Deny".
	Effect string
	// Actions as written: "dynamodb:GetItem", "dynamodb:Get*", "*", ...
	Actions []string
	// Resources resolved: "arn:aws:dynamodb:us-east-1:123456789012:table/tokens",
	// ".../table/tokens/index/*", "*", ...
	Resources []string
}

// covers reports whether the statement's actions and resources both
// cover action ("dynamodb:GetItem") on resource (an ARN or "*"). Actions
// compare case-insensitively, resources exactly; both take * and ?.
func (st Statement) covers(action, resource string) bool {
	actionOK := false
	for _, a := range st.Actions {
		if wildcardMatch(strings.ToLower(a), strings.ToLower(action)) {
			actionOK = true
			break
		}
	}
	if !actionOK {
		return false
	}
	for _, r := range st.Resources {
		if wildcardMatch(r, resource) {
			return true
		}
	}
	return false
}

// DynamoDBAllowed reports whether the function's policies allow action
// (e.g. "dynamodb:PutItem") on resource (a table or index ARN, or "*" for
// actions on no table), as IAM decides: an explicit Deny wins, then any
// Allow, else denied. The second result is true when a Deny statement
// matched.
func (f *Function) DynamoDBAllowed(action, resource string) (allowed, explicitDeny bool) {
	for _, st := range f.DynamoDBStatements {
		if st.Effect == "Deny" && st.covers(action, resource) {
			return false, true
		}
	}
	for _, st := range f.DynamoDBStatements {
		if st.Effect == "Allow" && st.covers(action, resource) {
			return true, false
		}
	}
	return false, false
}

// wildcardMatch matches s against an IAM pattern where * is any run of
// characters and ? any one character.
func wildcardMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// samDynamoDBPolicies are the actions of the SAM policy templates on a
// DynamoDB table (samtranslator policy_templates.json); each covers the
// table and its indexes.
var samDynamoDBPolicies = map[string][]string{
	"DynamoDBCrudPolicy": {"dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:Scan",
		"dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem", "dynamodb:BatchGetItem",
		"dynamodb:DescribeTable", "dynamodb:ConditionCheckItem"},
	"DynamoDBReadPolicy":  {"dynamodb:GetItem", "dynamodb:Scan", "dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:DescribeTable"},
	"DynamoDBWritePolicy": {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"},
}

// managedWithoutDynamoDB are AWS managed policies that grant no DynamoDB
// action; any other managed policy is refused, as the runner cannot tell
// what it allows.
var managedWithoutDynamoDB = map[string]bool{
	"AWSLambdaBasicExecutionRole":                 true,
	"AWSLambdaVPCAccessExecutionRole":             true,
	"AWSXRayDaemonWriteAccess":                    true,
	"AWSXrayWriteOnlyAccess":                      true,
	"CloudWatchLambdaInsightsExecutionRolePolicy": true,
}

// loadPolicies reads every function's Policies from the plain YAML (tags
// and all) into DynamoDBStatements and DynamoDBActions. A policy form the
// runner cannot read fails the load, so no function silently runs without
// enforcement.
func (s *Stack) loadPolicies(data []byte, r *resolver) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("read yaml: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	resources := mapGet(doc.Content[0], "Resources")
	if g := mapGet(mapGet(doc.Content[0], "Globals"), "Function"); mapGet(g, "Policies") != nil {
		return fmt.Errorf("globals: SAM does not take Policies in Globals.Function")
	}
	for id, fn := range s.Functions {
		policies := mapGet(mapGet(mapGet(resources, id), "Properties"), "Policies")
		p := policyReader{r: r}
		if err := p.policies(policies); err != nil {
			return fmt.Errorf("function %s Policies: %w", id, err)
		}
		fn.DynamoDBStatements = p.statements
		seen := map[string]bool{}
		for _, st := range p.statements {
			if st.Effect != "Allow" {
				continue
			}
			for _, a := range st.Actions {
				if !seen[a] {
					seen[a] = true
					fn.DynamoDBActions = append(fn.DynamoDBActions, a)
				}
			}
		}
		sort.Strings(fn.DynamoDBActions)
	}
	return nil
}

// mapGet returns the value of key in a mapping node, or nil.
func mapGet(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// intrinsic returns the function name ("Fn::If", "Ref", ...) and argument
// of a short-form tag (!If) or a one-key long-form mapping; "" otherwise.
func intrinsic(n *yaml.Node) (string, *yaml.Node) {
	if n == nil {
		return "", nil
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		name := strings.TrimPrefix(n.Tag, "!")
		if name != "Ref" && name != "Condition" {
			name = "Fn::" + name
		}
		return name, n
	}
	if n.Kind == yaml.MappingNode && len(n.Content) == 2 {
		k := n.Content[0].Value
		if k == "Ref" || k == "Condition" || strings.HasPrefix(k, "Fn::") {
			return k, n.Content[1]
		}
	}
	return "", nil
}

type policyReader struct {
	r          *resolver
	statements []Statement
}

// policies reads Policies: one policy or a list of them.
func (p *policyReader) policies(n *yaml.Node) error {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.SequenceNode && n.Tag == "!!seq" {
		for _, item := range n.Content {
			if err := p.policy(item); err != nil {
				return err
			}
		}
		return nil
	}
	return p.policy(n)
}

// policy reads one entry: a managed policy name, an inline policy
// document, a SAM policy template, or an !If of them (both branches count:
// the runner does not evaluate conditions, and in this template they only
// guard non-DynamoDB statements).
func (p *policyReader) policy(n *yaml.Node) error {
	switch name, arg := intrinsic(n); name {
	case "":
	case "Fn::If":
		if arg.Kind != yaml.SequenceNode || len(arg.Content) != 3 {
			return fmt.Errorf("line %d: !If wants [condition, then, else]", n.Line)
		}
		for _, branch := range arg.Content[1:] {
			if err := p.policy(branch); err != nil {
				return err
			}
		}
		return nil
	case "Ref":
		if arg.Value == "AWS::NoValue" {
			return nil
		}
		return fmt.Errorf("line %d: !Ref %s as a policy: the runner cannot tell its DynamoDB actions", n.Line, arg.Value)
	default:
		return fmt.Errorf("line %d: %s as a policy: the runner cannot tell its DynamoDB actions", n.Line, name)
	}
	switch n.Kind {
	case yaml.ScalarNode:
		name := n.Value
		if i := strings.LastIndex(name, "/"); strings.HasPrefix(name, "arn:") && i >= 0 {
			name = name[i+1:]
		}
		if managedWithoutDynamoDB[name] {
			return nil
		}
		return fmt.Errorf("line %d: managed policy %s: the runner cannot tell its DynamoDB actions; write its statements inline", n.Line, n.Value)
	case yaml.MappingNode:
		if st := mapGet(n, "Statement"); st != nil {
			return p.document(st)
		}
		if len(n.Content) != 2 {
			return fmt.Errorf("line %d: a policy is a Statement document or one SAM policy template", n.Line)
		}
		tmplName := n.Content[0].Value
		if actions, ok := samDynamoDBPolicies[tmplName]; ok {
			table, err := p.r.str(mapGet(n.Content[1], "TableName"))
			if err != nil {
				return fmt.Errorf("line %d: %s TableName: %w", n.Line, tmplName, err)
			}
			arn := TableARN(table)
			p.statements = append(p.statements, Statement{Effect: "Allow", Actions: actions, Resources: []string{arn, arn + "/index/*"}})
			return nil
		}
		if strings.HasPrefix(tmplName, "DynamoDB") || strings.HasPrefix(tmplName, "AWS") {
			return fmt.Errorf("line %d: SAM policy template %s is not supported by the runner's IAM check", n.Line, tmplName)
		}
		// Other SAM policy templates (KMSDecryptPolicy, SQSPollerPolicy, ...)
		// grant no DynamoDB action.
		return nil
	}
	return fmt.Errorf("line %d: unknown policy form", n.Line)
}

// document reads a policy document's Statement: one statement or a list.
func (p *policyReader) document(n *yaml.Node) error {
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode && n.Tag == "!!seq" {
		items = n.Content
	}
	for _, item := range items {
		if name, arg := intrinsic(item); name == "Fn::If" {
			if arg.Kind != yaml.SequenceNode || len(arg.Content) != 3 {
				return fmt.Errorf("line %d: !If wants [condition, then, else]", item.Line)
			}
			for _, branch := range arg.Content[1:] {
				if err := p.document(branch); err != nil {
					return err
				}
			}
			continue
		} else if name == "Ref" && arg.Value == "AWS::NoValue" {
			continue
		}
		if err := p.statement(item); err != nil {
			return err
		}
	}
	return nil
}

// statement reads one statement, keeping it only if it names DynamoDB
// actions (or "*").
func (p *policyReader) statement(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a statement is a mapping", n.Line)
	}
	effect := mapGet(n, "Effect")
	if effect == nil || (effect.Value != "Allow" && effect.Value != "Deny") {
		return fmt.Errorf("line %d: statement Effect must be Allow or Deny", n.Line)
	}
	if mapGet(n, "NotAction") != nil || mapGet(n, "NotResource") != nil {
		return fmt.Errorf("line %d: NotAction and NotResource are not supported by the runner's IAM check", n.Line)
	}
	actions, err := scalars(mapGet(n, "Action"))
	if err != nil {
		return fmt.Errorf("line %d: Action: %w", n.Line, err)
	}
	var dynamo []string
	for _, a := range actions {
		if a == "*" || strings.HasPrefix(strings.ToLower(a), "dynamodb:") {
			dynamo = append(dynamo, a)
		}
	}
	if len(dynamo) == 0 {
		return nil
	}
	if mapGet(n, "Condition") != nil {
		return fmt.Errorf("line %d: a DynamoDB statement with a Condition is not supported by the runner's IAM check", n.Line)
	}
	res := mapGet(n, "Resource")
	if res == nil {
		return fmt.Errorf("line %d: statement has no Resource", n.Line)
	}
	items := []*yaml.Node{res}
	if res.Kind == yaml.SequenceNode && res.Tag == "!!seq" {
		items = res.Content
	}
	var resources []string
	for _, item := range items {
		v, err := p.r.str(item)
		if err != nil {
			return fmt.Errorf("line %d: Resource: %w", item.Line, err)
		}
		resources = append(resources, v)
	}
	p.statements = append(p.statements, Statement{Effect: effect.Value, Actions: dynamo, Resources: resources})
	return nil
}

// scalars reads a string or a list of strings.
func scalars(n *yaml.Node) ([]string, error) {
	switch {
	case n == nil:
		return nil, fmt.Errorf("missing")
	case n.Kind == yaml.ScalarNode && n.Tag == "!!str":
		return []string{n.Value}, nil
	case n.Kind == yaml.SequenceNode && n.Tag == "!!seq":
		var out []string
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode || c.Tag != "!!str" {
				return nil, fmt.Errorf("line %d: want plain strings", c.Line)
			}
			out = append(out, c.Value)
		}
		return out, nil
	}
	return nil, fmt.Errorf("line %d: want a string or a list of strings", n.Line)
}

var subVar = regexp.MustCompile(`\$\{([^}!]+)\}`)

// str resolves a YAML value to a string the way the runner sees it: plain
// strings, !Ref, !GetAtt, !Sub and !Join.
func (r *resolver) str(n *yaml.Node) (string, error) {
	if n == nil {
		return "", fmt.Errorf("missing")
	}
	name, arg := intrinsic(n)
	switch name {
	case "":
		if n.Kind != yaml.ScalarNode {
			return "", fmt.Errorf("line %d: want a string", n.Line)
		}
		return n.Value, nil
	case "Ref":
		v, _ := r.ref("", arg.Value, nil).(string)
		if v == "" {
			return "", fmt.Errorf("line %d: !Ref %s resolves to nothing", n.Line, arg.Value)
		}
		return v, nil
	case "Fn::GetAtt":
		var in any = arg.Value
		if arg.Kind == yaml.SequenceNode && len(arg.Content) == 2 {
			in = []any{arg.Content[0].Value, arg.Content[1].Value}
		}
		v, _ := r.getAtt("", in, nil).(string)
		if v == "" {
			return "", fmt.Errorf("line %d: !GetAtt %v does not resolve locally", n.Line, in)
		}
		return v, nil
	case "Fn::Sub":
		text, vars := arg, (*yaml.Node)(nil)
		if arg.Kind == yaml.SequenceNode {
			if len(arg.Content) != 2 {
				return "", fmt.Errorf("line %d: !Sub wants a string or [string, variables]", n.Line)
			}
			text, vars = arg.Content[0], arg.Content[1]
		}
		if text.Kind != yaml.ScalarNode {
			return "", fmt.Errorf("line %d: !Sub wants a string", n.Line)
		}
		var err error
		out := subVar.ReplaceAllStringFunc(text.Value, func(m string) string {
			v := m[2 : len(m)-1]
			if vn := mapGet(vars, v); vn != nil {
				s, e := r.str(vn)
				if e != nil && err == nil {
					err = e
				}
				return s
			}
			var got any
			if id, attr, ok := strings.Cut(v, "."); ok && !strings.Contains(id, "::") {
				got = r.getAtt("", []any{id, attr}, nil)
			} else {
				got = r.ref("", v, nil)
			}
			s, _ := got.(string)
			if s == "" && err == nil {
				err = fmt.Errorf("line %d: !Sub ${%s} does not resolve locally", n.Line, v)
			}
			return s
		})
		return out, err
	case "Fn::Join":
		if arg.Kind != yaml.SequenceNode || len(arg.Content) != 2 || arg.Content[1].Kind != yaml.SequenceNode {
			return "", fmt.Errorf("line %d: !Join wants [delimiter, [values]]", n.Line)
		}
		var parts []string
		for _, c := range arg.Content[1].Content {
			s, err := r.str(c)
			if err != nil {
				return "", err
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, arg.Content[0].Value), nil
	}
	return "", fmt.Errorf("line %d: %s does not resolve locally", n.Line, name)
}
