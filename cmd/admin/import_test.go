package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmgw/token-service/internal/dynamotest"
	"github.com/llmgw/token-service/internal/importer/importtest"
	"github.com/llmgw/token-service/internal/token"
)

// TestImportCommand runs `admin import` as an operator would, against a
// SQLite file of one-api's fixtures: a dry run, then the import, then a
// rerun that changes nothing.
func TestImportCommand(t *testing.T) {
	_, table := dynamotest.NewTable(t)
	localEnv(t, table)
	t.Setenv("KMS_KEY_ID", "")
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	t.Setenv("SEALING_KEY", base64.StdEncoding.EncodeToString(key))

	path := filepath.Join(t.TempDir(), "one-api.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := importtest.Load(context.Background(), db, importtest.OneAPI, importtest.SQLite); err != nil {
		t.Fatal(err)
	}
	db.Close()

	steps := []struct {
		args []string
		want []string
	}{
		{[]string{"-dry-run", "-access-tokens"}, []string{"dry run: nothing written", "(one-api schema)", "would import"}},
		{[]string{"-access-tokens"}, []string{"users: 3 imported (1 disabled)", "refused        user 1 token 4: IP rules", "name replaced"}},
		{[]string{"-access-tokens"}, []string{"nothing new", "0 imported (0 renumbered)"}},
	}
	for _, s := range steps {
		var out bytes.Buffer
		args := append([]string{"import", "-from", "sqlite:" + path}, s.args...)
		if err := run(context.Background(), args, os.Getenv, strings.NewReader(""), &out); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out.String())
		}
		for _, w := range s.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v: report lacks %q:\n%s", args, w, out.String())
			}
		}
		if strings.Contains(out.String(), importtest.Key("o1")) {
			t.Errorf("the report shows a key")
		}
	}
}

func TestImportSealer(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	kms := errors.New("kms chosen")
	newKMS := func(string) (token.Sealer, error) { return nil, kms }
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"KMS key", map[string]string{"KMS_KEY_ID": "arn:aws:kms:us-east-1:1:key/k"}, "kms chosen"},
		{"nothing", map[string]string{}, "KMS_KEY_ID"},
		{"development key against AWS", map[string]string{"SEALING_KEY": key}, "local development key"},
		{"development key locally", map[string]string{"SEALING_KEY": key, "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:8000"}, ""},
		{"bad development key", map[string]string{"SEALING_KEY": "eA==", "AWS_ENDPOINT_URL_DYNAMODB": "http://localhost:8000"}, "SEALING_KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := importSealer(func(k string) string { return tt.env[k] }, newKMS)
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("importSealer = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}
