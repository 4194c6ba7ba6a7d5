package app_test

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"testing"

	"github.com/llmgw/token-service/internal/app"
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
			want: app.Config{TableName: "tokens", AllowedGroups: []string{"default"}, MaxTokensPerUser: 1000, LogLevel: slog.LevelInfo},
		},
		{
			name: "everything set",
			env: map[string]string{"TABLE_NAME": "t", "ALLOWED_GROUPS": " default, vip ,,svip", "MAX_TOKENS_PER_USER": "5",
				"SEALING_KEY": "a2V5", "LOG_LEVEL": "debug"},
			sealing: true,
			want: app.Config{TableName: "t", AllowedGroups: []string{"default", "vip", "svip"}, MaxTokensPerUser: 5,
				SealingKey: "a2V5", LogLevel: slog.LevelDebug},
		},
		{name: "no table", env: map[string]string{}, wantErr: true},
		{name: "bad limit", env: map[string]string{"TABLE_NAME": "t", "MAX_TOKENS_PER_USER": "many"}, wantErr: true},
		{name: "zero limit", env: map[string]string{"TABLE_NAME": "t", "MAX_TOKENS_PER_USER": "0"}, wantErr: true},
		{name: "bad log level", env: map[string]string{"TABLE_NAME": "t", "LOG_LEVEL": "LOUD"}, wantErr: true},
		{name: "sealing key required", env: map[string]string{"TABLE_NAME": "t"}, sealing: true, wantErr: true},
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
