package stack_test

import (
	"strings"
	"testing"
	"time"

	"github.com/llmgw/token-service/tools/stack"
	"github.com/llmgw/token-service/tools/template"
)

// A function that seals with KMS in AWS (it declares KMS_KEY_ID) gets the
// development key instead, as under sam local with the README's env file;
// every function runs with AWS_SAM_LOCAL=true.
func TestFunctionEnv(t *testing.T) {
	const key = "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U="
	tests := []struct {
		name string
		env  map[string]string
		want map[string]string // "-" = absent
	}{
		{
			name: "sealing function",
			env:  map[string]string{"KMS_KEY_ID": "arn:aws:kms:us-east-1:123456789012:key/x", "SEALING_KEY": "", "TABLE_NAME": "t"},
			want: map[string]string{"KMS_KEY_ID": "", "SEALING_KEY": key, "AWS_SAM_LOCAL": "true", "TABLE_NAME": "t"},
		},
		{
			name: "KMS_KEY_ID declared alone",
			env:  map[string]string{"KMS_KEY_ID": ""},
			want: map[string]string{"KMS_KEY_ID": "", "SEALING_KEY": key, "AWS_SAM_LOCAL": "true"},
		},
		{
			name: "no sealing",
			env:  map[string]string{"TABLE_NAME": "t"},
			want: map[string]string{"KMS_KEY_ID": "-", "SEALING_KEY": "-", "AWS_SAM_LOCAL": "true"},
		},
		{
			name: "runner variables win",
			env:  map[string]string{"AWS_SAM_LOCAL": "false", "AWS_REGION": "eu-west-1"},
			want: map[string]string{"AWS_SAM_LOCAL": "true", "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fn := &template.Function{LogicalID: "F", Env: tt.env, Timeout: 3 * time.Second, MemorySize: 128}
			got := map[string]string{}
			for _, kv := range stack.FunctionEnv(fn, stack.LocalEnv{TaskRoot: "/task", DynamoDBEndpoint: "http://127.0.0.1:1", SealingKey: key}) {
				k, v, _ := strings.Cut(kv, "=")
				got[k] = v
			}
			for k, want := range tt.want {
				v, ok := got[k]
				if want == "-" {
					if ok {
						t.Errorf("%s = %q, want it absent", k, v)
					}
					continue
				}
				if !ok || v != want {
					t.Errorf("%s = %q (set %v), want %q", k, v, ok, want)
				}
			}
		})
	}
}

// The relay's role gets a development value unless the caller names one
// (even an empty one), and the Invoke API acts as it.
func TestLocalParameters(t *testing.T) {
	tests := []struct {
		name          string
		overrides     map[string]string
		wantRelay     string
		wantPrincipal string
	}{
		{"default", nil, stack.DevRelayRoleARN, stack.DevRelayRoleARN},
		{"named", map[string]string{"RelayRoleArn": "arn:aws:iam::123456789012:role/relay"}, "arn:aws:iam::123456789012:role/relay", "arn:aws:iam::123456789012:role/relay"},
		{"emptied", map[string]string{"RelayRoleArn": ""}, "", stack.DevRelayRoleARN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			params, err := stack.LocalParameters("testdata/template.yaml", tt.overrides)
			if err != nil {
				t.Fatal(err)
			}
			if got := params["RelayRoleArn"]; got != tt.wantRelay {
				t.Errorf("RelayRoleArn = %q, want %q", got, tt.wantRelay)
			}
			params["Secret"] = "s"
			tmpl, err := template.Load("testdata/template.yaml", template.Options{ParameterOverrides: params})
			if err != nil {
				t.Fatal(err)
			}
			if got := stack.InvokePrincipal(tmpl); got != tt.wantPrincipal {
				t.Errorf("InvokePrincipal = %q, want %q", got, tt.wantPrincipal)
			}
		})
	}
}
