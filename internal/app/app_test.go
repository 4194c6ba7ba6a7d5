package app_test

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/llmgw/token-service/internal/app"
	"github.com/llmgw/token-service/internal/seal/kmsseal"
	"github.com/llmgw/token-service/internal/token"
)

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		sealing bool
		want    app.Config
		wantErr bool
	}{
		{
			name: "defaults",
			env:  map[string]string{"TABLE_NAME": "tokens"},
			want: app.Config{TableName: "tokens", AllowedGroups: []string{"default"}, MaxTokensPerUser: 1000, RevealsPerMinute: 30, LogLevel: slog.LevelInfo},
		},
		{
			name: "everything set",
			env: map[string]string{"TABLE_NAME": "t", "ALLOWED_GROUPS": " default, vip ,,svip", "MAX_TOKENS_PER_USER": "5",
				"SEALING_KEY": "a2V5", "AWS_SAM_LOCAL": "true", "KMS_KEY_ID": "arn:aws:kms:us-east-1:1:key/k", "REVEALS_PER_MINUTE": "7", "LOG_LEVEL": "debug"},
			sealing: true,
			want: app.Config{TableName: "t", AllowedGroups: []string{"default", "vip", "svip"}, MaxTokensPerUser: 5,
				SealingKey: "a2V5", KMSKeyID: "arn:aws:kms:us-east-1:1:key/k", RevealsPerMinute: 7, LogLevel: slog.LevelDebug},
		},
		{name: "no table", env: map[string]string{}, wantErr: true},
		{name: "bad limit", env: map[string]string{"TABLE_NAME": "t", "MAX_TOKENS_PER_USER": "many"}, wantErr: true},
		{name: "zero limit", env: map[string]string{"TABLE_NAME": "t", "MAX_TOKENS_PER_USER": "0"}, wantErr: true},
		{name: "bad log level", env: map[string]string{"TABLE_NAME": "t", "LOG_LEVEL": "LOUD"}, wantErr: true},
		{name: "sealing key required", env: map[string]string{"TABLE_NAME": "t"}, sealing: true, wantErr: true},
		{name: "development key refused outside a local run", env: map[string]string{"TABLE_NAME": "t", "SEALING_KEY": "a2V5"}, sealing: true, wantErr: true},
		{name: "development key refused beside KMS outside a local run", env: map[string]string{"TABLE_NAME": "t", "SEALING_KEY": "a2V5", "KMS_KEY_ID": "k"}, wantErr: true},
		{name: "KMS key is enough", env: map[string]string{"TABLE_NAME": "t", "KMS_KEY_ID": "k"}, sealing: true,
			want: app.Config{TableName: "t", AllowedGroups: []string{"default"}, MaxTokensPerUser: 1000, KMSKeyID: "k",
				RevealsPerMinute: 30, LogLevel: slog.LevelInfo}},
		{name: "bad reveal limit", env: map[string]string{"TABLE_NAME": "t", "REVEALS_PER_MINUTE": "0"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := app.LoadConfig(func(k string) string { return tt.env[k] }, tt.sealing)
			if (err != nil) != tt.wantErr {
				t.Fatalf("LoadConfig error = %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("LoadConfig =\n%+v, want\n%+v", got, tt.want)
			}
		})
	}
}

func TestSealer(t *testing.T) {
	s, err := app.Sealer("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Seal(context.Background(), []byte("x"), nil); !errors.Is(err, app.ErrNoSealingKey) {
		t.Errorf("NoSealer.Seal error = %v, want ErrNoSealingKey", err)
	}
	if _, err := app.Sealer("not base64!"); err == nil {
		t.Error("Sealer accepted a key that is not base64")
	}
	s, err = app.Sealer("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s.Seal(context.Background(), []byte("sk-x"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := s.Open(context.Background(), sealed, []byte("aad")); err != nil || string(pt) != "sk-x" {
		t.Errorf("Open = %q, %v", pt, err)
	}
}

func TestNewSealerChoosesFromConfig(t *testing.T) {
	kmsUsed := false
	newKMS := func(keyID string) (token.Sealer, error) {
		kmsUsed = true
		return kmsseal.NewKMS(stubKMS{}, keyID)
	}
	tests := []struct {
		name    string
		cfg     app.Config
		noKMS   bool // a function built without KMS (it seals nothing)
		want    string
		wantKMS bool
	}{
		{"KMS key set", app.Config{KMSKeyID: "arn:aws:kms:us-east-1:1:key/k", SealingKey: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}, false, "*kmsseal.KMS", true},
		{"sealing key only", app.Config{SealingKey: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}, false, "*seal.AESGCM", false},
		{"neither", app.Config{}, false, "app.NoSealer", false},
		// A function built without KMS given KMS_KEY_ID must not crash at
		// init: it never seals, so it gets NoSealer.
		{"KMS key set on a function without KMS", app.Config{KMSKeyID: "arn:aws:kms:us-east-1:1:key/k"}, true, "app.NoSealer", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kmsUsed = false
			f := newKMS
			if tt.noKMS {
				f = nil
			}
			s, err := app.NewSealer(tt.cfg, f)
			if err != nil {
				t.Fatal(err)
			}
			if got := reflect.TypeOf(s).String(); got != tt.want || kmsUsed != tt.wantKMS {
				t.Errorf("sealer %s (KMS client made: %v), want %s (%v)", got, kmsUsed, tt.want, tt.wantKMS)
			}
		})
	}
}

// stubKMS is never called: choosing a sealer makes no KMS request.
type stubKMS struct{ kmsseal.KMSAPI }

func TestAWSConfigReadsTheLambdaEnvironment(t *testing.T) {
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_SESSION_TOKEN", "session")
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000")
	cfg, err := app.AWSConfig()
	if err != nil {
		t.Fatal(err)
	}
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil || creds.AccessKeyID != "AKIDEXAMPLE" || creds.SessionToken != "session" || cfg.Region != "eu-west-1" {
		t.Fatalf("config = region %q, credentials %+v, %v", cfg.Region, creds, err)
	}
	if got := dynamodb.NewFromConfig(cfg).Options().BaseEndpoint; got == nil || *got != "http://127.0.0.1:8000" {
		t.Fatalf("DynamoDB endpoint = %v, want the AWS_ENDPOINT_URL_DYNAMODB value", got)
	}

	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	if _, err := app.AWSConfig(); err == nil {
		t.Fatal("no region: want an error")
	}
}
