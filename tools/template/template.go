// Package template reads the project's AWS SAM template.yaml into what the
// local stack runner needs: parameters, functions (with Globals merged and
// intrinsics resolved), the HttpApi's routes and authorizers, the DynamoDB
// table, each function's DynamoDB policy statements and the Lambda
// permissions a deployment would have (see Permission). It parses with
// goformation and cross-checks the routes against a plain YAML reading,
// because goformation silently drops an event with a property it does not
// know.
package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/awslabs/goformation/v7"
	"github.com/awslabs/goformation/v7/cloudformation"
	cfdynamodb "github.com/awslabs/goformation/v7/cloudformation/dynamodb"
	"github.com/awslabs/goformation/v7/intrinsics"
	"gopkg.in/yaml.v3"
)

// Local values of the pseudo parameters and ARNs the runner resolves.
const (
	Region    = "us-east-1"
	AccountID = "123456789012"
	// APIID is the local HttpApi id (Ref of the HttpApi resource and the
	// apiId of every request context).
	APIID = "localapi00"
)

// SAM's defaults when neither the function nor Globals set a value.
const (
	defaultTimeout    = 3 * time.Second
	defaultMemorySize = 128
)

// Resource types the loader knows.
const (
	typeFunction   = "AWS::Serverless::Function"
	typeHTTPAPI    = "AWS::Serverless::HttpApi"
	typeTable      = "AWS::DynamoDB::Table"
	typePermission = "AWS::Lambda::Permission"
	typeRole       = "AWS::IAM::Role"
)

// AuthNone is the event-level Auth.Authorizer value that turns the default
// authorizer off for a route.
const AuthNone = "NONE"

// Options tune Load.
type Options struct {
	// ParameterOverrides replace parameter defaults, as sam's
	// --parameter-overrides do. An override of an unknown parameter is an error.
	ParameterOverrides map[string]string
	// TableNames gives the physical name of each table resource (Ref
	// resolves to it); a table not listed gets its TableName property, else
	// its logical id.
	TableNames map[string]string
	// BaseDir is the folder CodeUris are relative to, as sam's --base-dir;
	// default the template's folder. It lets a test load a mutated copy of
	// the template kept elsewhere.
	BaseDir string
}

// Stack is what a template declares, resolved for local use.
type Stack struct {
	// Path is the template file; Dir the folder CodeUris are relative to.
	Path, Dir string
	// Parameters are the resolved parameter values, by name.
	Parameters map[string]string
	// Functions by logical id.
	Functions map[string]*Function
	// Routes are every HttpApi event, sorted by path then method.
	Routes []Route
	// APILogicalID is the HttpApi's logical id (SAM's ServerlessHttpApi
	// when the template declares none).
	APILogicalID string
	// Authorizers of the HttpApi by name; DefaultAuthorizer may be empty.
	Authorizers       map[string]*Authorizer
	DefaultAuthorizer string
	// Tables by logical id.
	Tables map[string]*Table
	// Permissions are the Lambda resource-based policy statements a
	// deployment of the template gives its functions, sorted by function
	// then logical id; see Permission.
	Permissions []Permission
}

// Function is one AWS::Serverless::Function.
type Function struct {
	LogicalID string
	// CodeURI as written (e.g. "functions/get-token/") and its folder
	// relative to the template's directory, cleaned (e.g. "functions/get-token").
	CodeURI, CodeDir string
	// Env is the environment from Globals and the function, refs resolved
	// (a value the runner cannot resolve locally, such as a KMS key's ARN,
	// is empty).
	Env        map[string]string
	Timeout    time.Duration
	MemorySize int
	// BuildMethod is Metadata.BuildMethod ("makefile", "go1.x", ...).
	BuildMethod string
	// DynamoDBStatements are the statements of the function's Policies
	// that name DynamoDB actions (inline statements and SAM DynamoDB policy
	// templates, both branches of an !If); the local runner enforces them.
	DynamoDBStatements []Statement
	// DynamoDBActions are the actions of its Allow statements, sorted
	// ("dynamodb:GetItem", ...).
	DynamoDBActions []string
}

// Route is one HttpApi event of a function.
type Route struct {
	Function string // logical id
	Event    string // event name
	Method   string // upper case; "ANY" for any method
	Path     string // as in the template, e.g. /api/token/{id}
	// Authorizer is the authorizer name, or "" for none.
	Authorizer string
}

// Key is the API Gateway route key, "GET /api/token/{id}".
func (r Route) Key() string { return r.Method + " " + r.Path }

// Authorizer is a Lambda REQUEST authorizer of the HttpApi.
type Authorizer struct {
	Name            string
	Function        string // logical id of the authorizer function
	PayloadVersion  string // "2.0"
	SimpleResponses bool
	// IdentityHeaders and IdentityQueryStrings are the identity sources;
	// a request missing any of them is refused with 401 unseen by the function.
	IdentityHeaders      []string
	IdentityQueryStrings []string
	// ReauthorizeEvery is how long a verdict is cached per identity; 0 = never.
	ReauthorizeEvery time.Duration
	// DefaultPermissions is EnableFunctionDefaultPermissions: only then does
	// SAM give API Gateway permission to invoke the authorizer function.
	DefaultPermissions bool
}

// Table is one AWS::DynamoDB::Table.
type Table struct {
	LogicalID string
	Name      string
	Resource  *cfdynamodb.Table
}

// FunctionARN is the local ARN of a function (what !GetAtt F.Arn gives).
func FunctionARN(logicalID string) string {
	return "arn:aws:lambda:" + Region + ":" + AccountID + ":function:" + logicalID
}

// RoleARN is the local ARN of an IAM role (what !GetAtt R.Arn gives for
// an AWS::IAM::Role of the template, or the relay's role in a local run).
func RoleARN(name string) string {
	return "arn:aws:iam::" + AccountID + ":role/" + name
}

// TableARN is the local ARN of a table.
func TableARN(name string) string {
	return "arn:aws:dynamodb:" + Region + ":" + AccountID + ":table/" + name
}

// Load reads the template at path.
func Load(path string, opts Options) (*Stack, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load template: %w", err)
	}
	s, err := parse(data, opts)
	if err != nil {
		return nil, fmt.Errorf("load template %s: %w", path, err)
	}
	s.Path = path
	s.Dir = filepath.Dir(path)
	if opts.BaseDir != "" {
		s.Dir = opts.BaseDir
	}
	return s, nil
}

// rawTemplate is the plain YAML reading of the parts goformation may miss.
type rawTemplate struct {
	Parameters map[string]struct {
		Type    string `yaml:"Type"`
		Default any    `yaml:"Default"`
	} `yaml:"Parameters"`
	Resources map[string]struct {
		Type       string `yaml:"Type"`
		Condition  string `yaml:"Condition"`
		Properties struct {
			TableName any `yaml:"TableName"`
			Events    map[string]struct {
				Type       string `yaml:"Type"`
				Properties struct {
					Method string `yaml:"Method"`
					Path   string `yaml:"Path"`
				} `yaml:"Properties"`
			} `yaml:"Events"`
		} `yaml:"Properties"`
	} `yaml:"Resources"`
}

func parse(data []byte, opts Options) (*Stack, error) {
	var raw rawTemplate
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("read yaml: %w", err)
	}
	params, err := resolveParameters(raw, opts.ParameterOverrides)
	if err != nil {
		return nil, err
	}
	tableNames := map[string]string{}
	for id, r := range raw.Resources {
		if r.Type != typeTable {
			continue
		}
		name := id
		if n, ok := r.Properties.TableName.(string); ok && n != "" {
			name = n
		}
		if n := opts.TableNames[id]; n != "" {
			name = n
		}
		tableNames[id] = name
	}

	r := &resolver{params: params, tables: tableNames, types: map[string]string{}}
	for id, res := range raw.Resources {
		r.types[id] = res.Type
	}
	served, err := servedPart(data)
	if err != nil {
		return nil, err
	}
	tmpl, err := goformation.ParseYAMLWithOptions(served, &intrinsics.ProcessorOptions{
		IntrinsicHandlerOverrides: map[string]intrinsics.IntrinsicHandler{
			"Ref":        r.ref,
			"Fn::GetAtt": r.getAtt,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("parse with goformation: %w", err)
	}
	if err := errors.Join(r.errs...); err != nil {
		return nil, err
	}

	s := &Stack{
		Parameters:  params,
		Functions:   map[string]*Function{},
		Authorizers: map[string]*Authorizer{},
		Tables:      map[string]*Table{},
	}
	if err := s.loadFunctions(tmpl); err != nil {
		return nil, err
	}
	if err := s.loadPolicies(data, r); err != nil {
		return nil, err
	}
	if err := s.loadAPI(tmpl); err != nil {
		return nil, err
	}
	if err := s.loadRoutes(tmpl); err != nil {
		return nil, err
	}
	if err := s.checkRoutes(raw); err != nil {
		return nil, err
	}
	if err := s.loadPermissions(data, r); err != nil {
		return nil, err
	}
	for id, t := range tmpl.GetAllDynamoDBTableResources() {
		s.Tables[id] = &Table{LogicalID: id, Name: tableNames[id], Resource: t}
	}
	return s, nil
}

// servedProperties are the properties the runner reads through goformation,
// by resource type ("Globals/Function" for Globals). Every other property,
// and every resource of another type, is left out of goformation's input:
// goformation refuses a property it does not know (LoggingConfig, say) and
// a parameter's string in a numeric field (RetentionInDays: !Ref Days),
// neither of which the runner needs. Policies and Lambda permissions are
// read from the plain YAML.
var servedProperties = map[string]map[string]bool{
	typeFunction:       {"CodeUri": true, "Environment": true, "Timeout": true, "MemorySize": true, "Events": true, "Handler": true, "Runtime": true},
	"Globals/Function": {"Environment": true, "Timeout": true, "MemorySize": true, "Handler": true, "Runtime": true},
	typeHTTPAPI:        {"Auth": true},
	typeTable:          nil, // every property: the table is created from them
}

// servedPart returns the template with only what goformation is to read
// (see servedProperties).
func servedPart(data []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("read yaml: %w", err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("read yaml: the template is not a mapping")
	}
	root := doc.Content[0]
	keepKeys(root, map[string]bool{"AWSTemplateFormatVersion": true, "Transform": true, "Parameters": true,
		"Conditions": true, "Mappings": true, "Globals": true, "Resources": true})
	if g := mapGet(root, "Globals"); g != nil {
		keepKeys(g, map[string]bool{"Function": true})
		if fn := mapGet(g, "Function"); fn != nil {
			keepKeys(fn, servedProperties["Globals/Function"])
		}
	}
	if res := mapGet(root, "Resources"); res != nil && res.Kind == yaml.MappingNode {
		var kept []*yaml.Node
		for i := 0; i+1 < len(res.Content); i += 2 {
			r := res.Content[i+1]
			typ := mapGet(r, "Type")
			if typ == nil {
				continue
			}
			props, served := servedProperties[typ.Value]
			if !served {
				continue
			}
			if p := mapGet(r, "Properties"); p != nil && props != nil {
				keepKeys(p, props)
			}
			kept = append(kept, res.Content[i], r)
		}
		res.Content = kept
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return nil, fmt.Errorf("write yaml: %w", err)
	}
	return out, nil
}

// keepKeys removes from a mapping node every key not in keep.
func keepKeys(n *yaml.Node, keep map[string]bool) {
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	var kept []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if keep[n.Content[i].Value] {
			kept = append(kept, n.Content[i], n.Content[i+1])
		}
	}
	n.Content = kept
}

// resolveParameters applies overrides to defaults; every parameter must end
// with a value.
func resolveParameters(raw rawTemplate, overrides map[string]string) (map[string]string, error) {
	params := map[string]string{}
	for name := range overrides {
		if _, ok := raw.Parameters[name]; !ok {
			return nil, fmt.Errorf("parameter override %s: the template has no such parameter", name)
		}
	}
	var missing []string
	for name, p := range raw.Parameters {
		if v, ok := overrides[name]; ok {
			params[name] = v
			continue
		}
		if p.Default == nil {
			missing = append(missing, name)
			continue
		}
		params[name] = scalarString(p.Default)
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("parameters without a default need a value (parameter overrides): %s", strings.Join(missing, ", "))
	}
	for name, p := range raw.Parameters {
		if p.Type == "Number" {
			if _, err := strconv.ParseFloat(params[name], 64); err != nil {
				return nil, fmt.Errorf("parameter %s: %q is not a number", name, params[name])
			}
		}
	}
	return params, nil
}

// scalarString formats a YAML scalar the way CloudFormation passes a
// parameter value: as a string.
func scalarString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = scalarString(e)
		}
		return strings.Join(parts, ",")
	default:
		return fmt.Sprint(v)
	}
}

// resolver resolves Ref and Fn::GetAtt the way the local stack sees the
// resources; goformation alone resolves them to nothing.
type resolver struct {
	params map[string]string
	tables map[string]string // logical id -> physical name
	types  map[string]string // logical id -> resource type
	errs   []error
}

func (r *resolver) ref(_ string, input any, _ any) any {
	name, ok := input.(string)
	if !ok {
		r.errs = append(r.errs, fmt.Errorf("resolve !Ref of a non-string %v", input))
		return nil
	}
	if v, ok := r.params[name]; ok {
		return v
	}
	switch name {
	case "AWS::Region":
		return Region
	case "AWS::AccountId":
		return AccountID
	case "AWS::Partition":
		return "aws"
	case "AWS::URLSuffix":
		return "amazonaws.com"
	case "AWS::StackName":
		return "local"
	case "AWS::StackId":
		return "arn:aws:cloudformation:" + Region + ":" + AccountID + ":stack/local/00000000-0000-0000-0000-000000000000"
	case "AWS::NoValue":
		return nil
	}
	switch r.types[name] {
	case typeTable:
		return r.tables[name]
	case typeHTTPAPI:
		return APIID
	case "":
		r.errs = append(r.errs, fmt.Errorf("resolve !Ref %s: no such parameter or resource", name))
		return nil
	}
	// Functions and other resources: their logical id stands for the name.
	return name
}

func (r *resolver) getAtt(_ string, input any, _ any) any {
	var id, attr string
	switch v := input.(type) {
	case string:
		id, attr, _ = strings.Cut(v, ".")
	case []any:
		if len(v) == 2 {
			id, _ = v[0].(string)
			attr, _ = v[1].(string)
		}
	}
	if id == "" || attr == "" {
		r.errs = append(r.errs, fmt.Errorf("resolve !GetAtt %v: want [resource, attribute]", input))
		return nil
	}
	switch {
	case r.types[id] == typeTable && attr == "Arn":
		return TableARN(r.tables[id])
	case r.types[id] == typeTable && attr == "StreamArn":
		return TableARN(r.tables[id]) + "/stream/1970-01-01T00:00:00.000"
	case r.types[id] == typeFunction && attr == "Arn":
		return FunctionARN(id)
	case r.types[id] == typeRole && attr == "Arn":
		return RoleARN(id)
	case r.types[id] == "":
		r.errs = append(r.errs, fmt.Errorf("resolve !GetAtt %s.%s: no such resource", id, attr))
	}
	// Attributes the runner does not use (KMS key ARNs, ...) stay unresolved.
	return nil
}

func (s *Stack) loadFunctions(tmpl *cloudformation.Template) error {
	var globalEnv map[string]string
	globalTimeout, globalMemory := 0, 0
	if g, err := tmpl.GetServerlessGlobalFunction(); err == nil && g != nil {
		if g.Environment != nil {
			globalEnv = g.Environment.Variables
		}
		if g.Timeout != nil {
			globalTimeout = *g.Timeout
		}
		if g.MemorySize != nil {
			globalMemory = *g.MemorySize
		}
	}
	for id, f := range tmpl.GetAllServerlessFunctionResources() {
		fn := &Function{LogicalID: id, Env: map[string]string{}, Timeout: defaultTimeout, MemorySize: defaultMemorySize}
		if f.CodeUri == nil || f.CodeUri.String == nil || *f.CodeUri.String == "" {
			return fmt.Errorf("function %s: CodeUri must be a local folder", id)
		}
		fn.CodeURI = *f.CodeUri.String
		fn.CodeDir = filepath.Clean(fn.CodeURI)
		for k, v := range globalEnv {
			fn.Env[k] = v
		}
		if f.Environment != nil {
			for k, v := range f.Environment.Variables {
				fn.Env[k] = v
			}
		}
		if globalTimeout > 0 {
			fn.Timeout = time.Duration(globalTimeout) * time.Second
		}
		if f.Timeout != nil {
			fn.Timeout = time.Duration(*f.Timeout) * time.Second
		}
		if globalMemory > 0 {
			fn.MemorySize = globalMemory
		}
		if f.MemorySize != nil {
			fn.MemorySize = *f.MemorySize
		}
		if m, ok := f.AWSCloudFormationMetadata["BuildMethod"].(string); ok {
			fn.BuildMethod = m
		}
		s.Functions[id] = fn
	}
	return nil
}

// authorizerJSON is one entry of HttpApi Auth.Authorizers.
type authorizerJSON struct {
	FunctionArn                      string
	AuthorizerPayloadFormatVersion   any
	EnableSimpleResponses            bool
	EnableFunctionDefaultPermissions any
	JwtConfiguration                 any
	Identity                         struct {
		Headers          []string
		QueryStrings     []string
		ReauthorizeEvery any
	}
}

func (s *Stack) loadAPI(tmpl *cloudformation.Template) error {
	apis := tmpl.GetAllServerlessHttpApiResources()
	if len(apis) > 1 {
		return fmt.Errorf("the runner serves one AWS::Serverless::HttpApi, the template has %d", len(apis))
	}
	s.APILogicalID = "ServerlessHttpApi"
	for id, api := range apis {
		s.APILogicalID = id
		if api.Auth == nil {
			continue
		}
		if api.Auth.DefaultAuthorizer != nil {
			s.DefaultAuthorizer = *api.Auth.DefaultAuthorizer
		}
		if api.Auth.Authorizers == nil {
			continue
		}
		b, err := json.Marshal(api.Auth.Authorizers)
		if err != nil {
			return fmt.Errorf("%s authorizers: %w", id, err)
		}
		var auths map[string]authorizerJSON
		if err := json.Unmarshal(b, &auths); err != nil {
			return fmt.Errorf("%s authorizers: %w", id, err)
		}
		for name, a := range auths {
			if a.JwtConfiguration != nil {
				return fmt.Errorf("authorizer %s: JWT authorizers are not supported locally", name)
			}
			fn, ok := strings.CutPrefix(a.FunctionArn, FunctionARN(""))
			if !ok || s.Functions[fn] == nil {
				return fmt.Errorf("authorizer %s: FunctionArn must be !GetAtt <function>.Arn of a function in the template", name)
			}
			version := scalarString(a.AuthorizerPayloadFormatVersion)
			if version != "2.0" {
				return fmt.Errorf("authorizer %s: payload format version %q: only 2.0 is supported locally", name, version)
			}
			every := 0.0
			if a.Identity.ReauthorizeEvery != nil {
				every, err = strconv.ParseFloat(scalarString(a.Identity.ReauthorizeEvery), 64)
				if err != nil || every < 0 {
					return fmt.Errorf("authorizer %s: ReauthorizeEvery %v is not a number of seconds", name, a.Identity.ReauthorizeEvery)
				}
			}
			if len(a.Identity.Headers)+len(a.Identity.QueryStrings) == 0 && every > 0 {
				return fmt.Errorf("authorizer %s: caching (ReauthorizeEvery) needs an identity source", name)
			}
			// SAM takes a boolean only (a !Ref fails its validation).
			defaultPermissions, ok := a.EnableFunctionDefaultPermissions.(bool)
			if !ok && a.EnableFunctionDefaultPermissions != nil {
				return fmt.Errorf("authorizer %s: EnableFunctionDefaultPermissions %v: SAM wants true or false", name, a.EnableFunctionDefaultPermissions)
			}
			s.Authorizers[name] = &Authorizer{
				Name:                 name,
				Function:             fn,
				PayloadVersion:       version,
				SimpleResponses:      a.EnableSimpleResponses,
				IdentityHeaders:      a.Identity.Headers,
				IdentityQueryStrings: a.Identity.QueryStrings,
				ReauthorizeEvery:     time.Duration(every * float64(time.Second)),
				DefaultPermissions:   defaultPermissions,
			}
		}
	}
	if s.DefaultAuthorizer != "" && s.Authorizers[s.DefaultAuthorizer] == nil {
		return fmt.Errorf("DefaultAuthorizer %s is not among the HttpApi's Authorizers", s.DefaultAuthorizer)
	}
	return nil
}

func (s *Stack) loadRoutes(tmpl *cloudformation.Template) error {
	for id, f := range tmpl.GetAllServerlessFunctionResources() {
		for name, ev := range f.Events {
			if ev.Type != "HttpApi" {
				continue
			}
			if ev.Properties == nil || ev.Properties.HttpApiEvent == nil {
				return fmt.Errorf("function %s event %s: goformation could not read this HttpApi event (a property it does not know?)", id, name)
			}
			e := ev.Properties.HttpApiEvent
			if e.PayloadFormatVersion != nil && *e.PayloadFormatVersion != "2.0" {
				return fmt.Errorf("function %s event %s: payload format version %s: only 2.0 is supported locally", id, name, *e.PayloadFormatVersion)
			}
			if e.Method == nil || e.Path == nil {
				return fmt.Errorf("function %s event %s: the runner needs Method and Path", id, name)
			}
			rt := Route{Function: id, Event: name, Method: strings.ToUpper(*e.Method), Path: *e.Path, Authorizer: s.DefaultAuthorizer}
			if rt.Method == "X-AMAZON-APIGATEWAY-ANY-METHOD" {
				rt.Method = "ANY"
			}
			if e.Auth != nil && e.Auth.Authorizer != nil {
				rt.Authorizer = *e.Auth.Authorizer
			}
			if rt.Authorizer == AuthNone {
				rt.Authorizer = ""
			}
			if rt.Authorizer != "" && s.Authorizers[rt.Authorizer] == nil {
				return fmt.Errorf("function %s event %s: unknown authorizer %s", id, name, rt.Authorizer)
			}
			s.Routes = append(s.Routes, rt)
		}
	}
	sort.Slice(s.Routes, func(i, j int) bool {
		if s.Routes[i].Path != s.Routes[j].Path {
			return s.Routes[i].Path < s.Routes[j].Path
		}
		return s.Routes[i].Method < s.Routes[j].Method
	})
	for i := 1; i < len(s.Routes); i++ {
		if s.Routes[i].Key() == s.Routes[i-1].Key() {
			return fmt.Errorf("route %s is declared twice (%s and %s)", s.Routes[i].Key(), s.Routes[i-1].Function, s.Routes[i].Function)
		}
	}
	return nil
}

// checkRoutes fails when the plain YAML declares an HttpApi event that
// goformation did not deliver.
func (s *Stack) checkRoutes(raw rawTemplate) error {
	found := map[string]bool{}
	for _, rt := range s.Routes {
		found[rt.Function+"/"+rt.Event] = true
	}
	var missed []string
	for id, res := range raw.Resources {
		if res.Type != typeFunction {
			continue
		}
		for name, ev := range res.Properties.Events {
			if ev.Type == "HttpApi" && !found[id+"/"+name] {
				missed = append(missed, fmt.Sprintf("%s %s (%s event %s)", ev.Properties.Method, ev.Properties.Path, id, name))
			}
		}
	}
	if len(missed) > 0 {
		sort.Strings(missed)
		return fmt.Errorf("goformation missed HttpApi routes the YAML declares: %s", strings.Join(missed, "; "))
	}
	return nil
}

// ParametersWithoutDefault lists the parameters of the template at path
// that need a value from the caller, sorted.
func ParametersWithoutDefault(path string) ([]string, error) {
	return parametersWhere(path, func(def any) bool { return def == nil })
}

// ParametersWithoutValue lists the parameters of the template at path
// whose default is missing or empty, sorted: those a local run may have
// to supply (the relay's RelayRoleArn, for one).
func ParametersWithoutValue(path string) ([]string, error) {
	return parametersWhere(path, func(def any) bool { return def == nil || scalarString(def) == "" })
}

func parametersWhere(path string, pick func(def any) bool) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read template: %w", err)
	}
	var raw rawTemplate
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("read template %s: %w", path, err)
	}
	var names []string
	for name, p := range raw.Parameters {
		if pick(p.Default) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names, nil
}
