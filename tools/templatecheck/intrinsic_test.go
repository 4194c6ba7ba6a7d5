package templatecheck_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/llmgw/token-service/tools/sam"
)

const projectTemplate = "../../template.yaml"

// stack is the project's template as the SAM translator turns it into
// CloudFormation, the form AWS deploys.
type stack struct {
	*sam.Template
	// policies holds each resource's DeletionPolicy and UpdateReplacePolicy,
	// which sam.Resource does not carry in full.
	policies map[string]struct{ DeletionPolicy, UpdateReplacePolicy string }
}

var translation struct {
	once  sync.Once
	stack *stack
	err   error
}

// translated returns the translation of the project's template with its
// default parameters, made once for the package's tests.
func translated(t *testing.T) *stack {
	t.Helper()
	translation.once.Do(func() {
		ctx := context.Background()
		if err := sam.Available(ctx); err != nil {
			translation.err = fmt.Errorf("the SAM translator is missing (make lint installs it): %w", err)
			return
		}
		tmpl, raw, err := sam.Translate(ctx, projectTemplate, nil)
		if err != nil {
			translation.err = err
			return
		}
		var doc struct {
			Resources map[string]struct{ DeletionPolicy, UpdateReplacePolicy string }
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			translation.err = err
			return
		}
		translation.stack = &stack{Template: tmpl, policies: doc.Resources}
	})
	if translation.err != nil {
		t.Fatal(translation.err)
	}
	return translation.stack
}

// resource returns the resource id, failing the test when the stack has
// none or when it is not of type typ.
func (s *stack) resource(t *testing.T, id, typ string) sam.Resource {
	t.Helper()
	r, ok := s.Resources[id]
	if !ok {
		t.Fatalf("no resource %s in the translated template", id)
	}
	if r.Type != typ {
		t.Fatalf("%s is a %s, want %s", id, r.Type, typ)
	}
	return r
}

// only returns the one resource of type typ, failing the test unless there
// is exactly one.
func (s *stack) only(t *testing.T, typ string) (string, sam.Resource) {
	t.Helper()
	ids := s.OfType(typ)
	if len(ids) != 1 {
		t.Fatalf("%d resources of type %s (%v), want 1", len(ids), typ, ids)
	}
	return ids[0], s.Resources[ids[0]]
}

// render writes v, a string or one of the intrinsics below, in Fn::Sub's
// own syntax, so that a test compares plain strings: {"Ref": "X"} is
// "${X}", {"Fn::GetAtt": ["X", "Arn"]} is "${X.Arn}", a Fn::Sub string
// stays as written, and in the [string, {vars}] form of Fn::Sub each
// ${var} becomes its value's rendering. Numbers and booleans render as
// JSON. ok is false for anything else (Fn::If, Fn::Join, ...).
func render(v any) (s string, ok bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case float64, bool:
		b, _ := json.Marshal(v)
		return string(b), true
	case map[string]any:
		if len(v) != 1 {
			return "", false
		}
		if ref, ok := v["Ref"].(string); ok {
			return "${" + ref + "}", true
		}
		if id, attr := getAtt(v["Fn::GetAtt"]); id != "" {
			return "${" + id + "." + attr + "}", true
		}
		switch sub := v["Fn::Sub"].(type) {
		case string:
			return sub, true
		case []any:
			if len(sub) != 2 {
				return "", false
			}
			s, ok := sub[0].(string)
			vars, isMap := sub[1].(map[string]any)
			if !ok || !isMap {
				return "", false
			}
			for name, val := range vars {
				r, ok := render(val)
				if !ok {
					return "", false
				}
				s = strings.ReplaceAll(s, "${"+name+"}", r)
			}
			return s, true
		}
	}
	return "", false
}

// getAtt returns the logical id and attribute of a Fn::GetAtt's argument,
// in either of its forms (["X", "Arn"] or "X.Arn").
func getAtt(v any) (id, attr string) {
	switch v := v.(type) {
	case []any:
		if len(v) == 2 {
			id, _ := v[0].(string)
			attr, _ := v[1].(string)
			return id, attr
		}
	case string:
		id, attr, _ := strings.Cut(v, ".")
		return id, attr
	}
	return "", ""
}

// target returns the logical id v points at through Ref or Fn::GetAtt, or
// "" when v is neither.
func target(v any) string {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return ""
	}
	if ref, ok := m["Ref"].(string); ok {
		return ref
	}
	id, _ := getAtt(m["Fn::GetAtt"])
	return id
}

// dig follows keys through nested JSON objects and returns what it finds,
// nil when a key is missing.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// jsonOf is v as compact JSON, for comparing an intrinsic with the one a
// test wants and for messages.
func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return string(b)
}

// sameJSON reports whether got and want, both JSON text, hold the same
// value.
func sameJSON(t *testing.T, got any, want string) bool {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want %s: %v", want, err)
	}
	var g any
	if err := json.Unmarshal([]byte(jsonOf(got)), &g); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(g, w)
}

// stringList lists v, a string or a list of them (as IAM's Action and
// Principal are written), rendered.
func stringList(v any) []string {
	var out []string
	switch v := v.(type) {
	case nil:
	case []any:
		for _, e := range v {
			r, ok := render(e)
			if !ok {
				r = jsonOf(e)
			}
			out = append(out, r)
		}
	default:
		r, ok := render(v)
		if !ok {
			r = jsonOf(v)
		}
		out = append(out, r)
	}
	return out
}

// iamMatch reports whether an IAM action pattern (with * and ? wildcards,
// case-insensitive as IAM compares actions) matches action.
func iamMatch(pattern, action string) bool {
	re := "(?i)^" + strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(pattern)) + "$"
	return regexp.MustCompile(re).MatchString(action)
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

func TestRender(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"string", `"abc"`, "abc"},
		{"number", `30`, "30"},
		{"ref", `{"Ref": "TokenApi"}`, "${TokenApi}"},
		{"getatt list", `{"Fn::GetAtt": ["AuthorizerFunction", "Arn"]}`, "${AuthorizerFunction.Arn}"},
		{"getatt string", `{"Fn::GetAtt": "AuthorizerFunction.Arn"}`, "${AuthorizerFunction.Arn}"},
		{"sub string", `{"Fn::Sub": "arn:${AWS::Partition}:x:${F.Arn}"}`, "arn:${AWS::Partition}:x:${F.Arn}"},
		{
			"sub with vars",
			`{"Fn::Sub": ["${AWS::Region}:${__ApiId__}/${__Stage__}/GET/", {"__ApiId__": {"Ref": "TokenApi"}, "__Stage__": "*"}]}`,
			"${AWS::Region}:${TokenApi}/*/GET/",
		},
		{"if", `{"Fn::If": ["C", "a", "b"]}`, "<no rendering>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v any
			if err := json.Unmarshal([]byte(tt.in), &v); err != nil {
				t.Fatal(err)
			}
			got, ok := render(v)
			if !ok {
				got = "<no rendering>"
			}
			if got != tt.want {
				t.Errorf("render(%s) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestIAMMatch(t *testing.T) {
	tests := []struct {
		pattern, action string
		want            bool
	}{
		{"kms:Decrypt", "kms:Decrypt", true},
		{"kms:decrypt", "kms:Decrypt", true},
		{"kms:*", "kms:Decrypt", true},
		{"*", "kms:Decrypt", true},
		{"kms:GenerateDataKey*", "kms:GenerateDataKeyWithoutPlaintext", true},
		{"kms:Re*", "kms:ReEncryptFrom", true},
		{"kms:Describe?ey", "kms:DescribeKey", true},
		{"kms:DescribeKey", "kms:Decrypt", false},
		{"kms:GenerateDataKey", "kms:GenerateDataKeyPair", false},
		{"kms:Decrypt.", "kms:Decrypt", false},
	}
	for _, tt := range tests {
		if got := iamMatch(tt.pattern, tt.action); got != tt.want {
			t.Errorf("iamMatch(%q, %q) = %v, want %v", tt.pattern, tt.action, got, tt.want)
		}
	}
}

// readProjectTemplate returns template.yaml's text.
func readProjectTemplate(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(projectTemplate)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
