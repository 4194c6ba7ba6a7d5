package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/llmgw/token-service/internal/auth"
	"github.com/llmgw/token-service/internal/dynamotest"
	"github.com/llmgw/token-service/internal/token/dynamo"
)

// localEnv points the command at table in the tests' DynamoDB Local, with
// the credentials and region it accepts.
func localEnv(t *testing.T, table string) {
	t.Helper()
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamotest.Endpoint(t))
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "local")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "local")
	t.Setenv("TABLE_NAME", table)
}

func TestIssueAndRevoke(t *testing.T) {
	client, table := dynamotest.NewTable(t)
	localEnv(t, table)
	core, err := dynamo.NewCore(client, table)
	if err != nil {
		t.Fatal(err)
	}
	store := dynamo.NewAccessTokens(core)
	ctx := context.Background()

	var out bytes.Buffer
	if err := run(ctx, []string{"issue", "-user", "42", "-role", "admin"}, os.Getenv, strings.NewReader(""), &out); err != nil {
		t.Fatalf("issue: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	tok := lines[len(lines)-1]
	if len(lines) < 2 || !auth.WellFormed(tok) {
		t.Fatalf("issue output = %q, want a human line then the token as the last line", out.String())
	}
	p, err := store.LookupAccessToken(ctx, auth.Hash(tok))
	if err != nil || p != (auth.Principal{UserID: "42", Role: auth.RoleAdmin}) {
		t.Fatalf("lookup issued token = %+v, %v", p, err)
	}

	out.Reset()
	if err := run(ctx, []string{"revoke", "-token", "-"}, os.Getenv, strings.NewReader(tok+"\n"), &out); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if _, err := store.LookupAccessToken(ctx, auth.Hash(tok)); err == nil {
		t.Error("revoked token still looks up")
	}
}

func TestDisableAndEnableUser(t *testing.T) {
	client, table := dynamotest.NewTable(t)
	localEnv(t, table)
	core, err := dynamo.NewCore(client, table)
	if err != nil {
		t.Fatal(err)
	}
	store := dynamo.NewAccessTokens(core)
	ctx := context.Background()
	tok, err := auth.NewAccessToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := store.PutAccessToken(ctx, auth.Hash(tok), auth.Principal{UserID: "42", Role: auth.RoleUser}); err != nil {
		t.Fatal(err)
	}
	other, _ := auth.NewAccessToken()
	if err := store.PutAccessToken(ctx, auth.Hash(other), auth.Principal{UserID: "43", Role: auth.RoleUser}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		cmd       string
		wantErr   error // of user 42's lookup
		wantPrint string
	}{
		{"disable-user", auth.ErrDisabled, "user 42 disabled"},
		{"disable-user", auth.ErrDisabled, "user 42 disabled"}, // twice is fine
		{"enable-user", nil, "user 42 enabled"},
	}
	for _, s := range steps {
		var out bytes.Buffer
		if err := run(ctx, []string{s.cmd, "-user", "42"}, os.Getenv, strings.NewReader(""), &out); err != nil {
			t.Fatalf("%s: %v", s.cmd, err)
		}
		if !strings.Contains(out.String(), s.wantPrint) {
			t.Errorf("%s printed %q, want %q", s.cmd, out.String(), s.wantPrint)
		}
		if _, err := store.LookupAccessToken(ctx, auth.Hash(tok)); !errors.Is(err, s.wantErr) {
			t.Errorf("after %s: lookup error %v, want %v", s.cmd, err, s.wantErr)
		}
		if p, err := store.LookupAccessToken(ctx, auth.Hash(other)); err != nil || p.UserID != "43" {
			t.Errorf("after %s: user 43's lookup = %+v, %v; want unaffected", s.cmd, p, err)
		}
	}
}

func TestRunRefusals(t *testing.T) {
	localEnv(t, "no-such-table")
	endpoint := dynamotest.Endpoint(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "usage"},
		{"unknown command", []string{"grant"}, "unknown command"},
		{"bad user id", []string{"issue", "-user", "a b"}, "user id"},
		{"no user id", []string{"issue"}, "user id"},
		{"bad role", []string{"issue", "-user", "1", "-role", "root"}, "role"},
		{"bad token", []string{"revoke", "-token", "at-x"}, "not an access token"},
		{"disable without user", []string{"disable-user"}, "user id"},
		{"enable bad user id", []string{"enable-user", "-user", "a/b"}, "user id"},
		{"disable no table", []string{"disable-user", "-user", "1"}, "table no-such-table not found"},
		{"import without a source", []string{"import"}, "-from <source> is required"},
		{"import from an unknown kind", []string{"import", "-from", "oracle://h/db"}, "-from must be sqlite:<path>"},
		{"import with a bad prefix", []string{"import", "-from", "sqlite:/nonexistent.db", "-user-prefix", "a b"}, "-user-prefix may hold only"},
		{"no table", []string{"issue", "-user", "1"}, "table no-such-table not found at " + endpoint + ": start the local stack first (make start-api)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), tt.args, os.Getenv, strings.NewReader(""), &out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run(%q) error = %v, want one containing %q", tt.args, err, tt.want)
			}
			if out.Len() != 0 {
				t.Errorf("run(%q) printed %q", tt.args, out.String())
			}
		})
	}
}

// TestAWSConfigRegion: against AWS the profile's region is used (never a
// forced us-east-1), and a missing one is an error; only a local endpoint
// gets DynamoDB Local's defaults.
func TestAWSConfigRegion(t *testing.T) {
	dir := t.TempDir()
	cfgFile := dir + "/config"
	if err := os.WriteFile(cfgFile, []byte("[profile ops]\nregion = eu-west-3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("AWS_CONFIG_FILE", cfgFile)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/none")
	ctx := context.Background()

	tests := []struct {
		name, profile, endpoint, want string
		wantErr                       bool
	}{
		{name: "profile region against AWS", profile: "ops", want: "eu-west-3"},
		{name: "no region against AWS", wantErr: true},
		{name: "local endpoint defaults", endpoint: "http://127.0.0.1:8000", want: "us-east-1"},
		{name: "profile region wins locally too", profile: "ops", endpoint: "http://127.0.0.1:8000", want: "eu-west-3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string {
				if k == "AWS_PROFILE" {
					return tt.profile
				}
				return ""
			}
			if tt.profile != "" {
				t.Setenv("AWS_PROFILE", tt.profile)
			}
			cfg, err := awsConfig(ctx, getenv, tt.endpoint)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("awsConfig = region %q, want an error", cfg.Region)
				}
				return
			}
			if err != nil || cfg.Region != tt.want {
				t.Fatalf("awsConfig = region %q, %v; want %q", cfg.Region, err, tt.want)
			}
		})
	}
}
