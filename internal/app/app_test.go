package app_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/llmgw/token-service/internal/app"
	"github.com/llmgw/token-service/internal/config"
	"github.com/llmgw/token-service/internal/seal/kmsseal"
	"github.com/llmgw/token-service/internal/token"
)

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
		cfg     config.Config
		noKMS   bool // a function built without KMS (it seals nothing)
		want    string
		wantKMS bool
	}{
		{"KMS key set", config.Config{KMSKeyID: "arn:aws:kms:us-east-1:1:key/k", SealingKey: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}, false, "*kmsseal.KMS", true},
		{"sealing key only", config.Config{SealingKey: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}, false, "*seal.AESGCM", false},
		{"neither", config.Config{}, false, "app.NoSealer", false},
		// A function built without KMS given KMS_KEY_ID must not crash at
		// init: it never seals, so it gets NoSealer.
		{"KMS key set on a function without KMS", config.Config{KMSKeyID: "arn:aws:kms:us-east-1:1:key/k"}, true, "app.NoSealer", false},
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
