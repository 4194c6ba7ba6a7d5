package config_test

import (
	"log/slog"
	"reflect"
	"testing"

	"github.com/llmgw/token-service/internal/config"
)

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		sealing bool
		want    config.Config
		wantErr bool
	}{
		{
			name: "defaults",
			env:  map[string]string{"TABLE_NAME": "tokens"},
			want: config.Config{TableName: "tokens", AllowedGroups: []string{"default"}, MaxTokensPerUser: 1000, RevealsPerMinute: 30, LogLevel: slog.LevelInfo},
		},
		{
			name: "everything set",
			env: map[string]string{"TABLE_NAME": "t", "ALLOWED_GROUPS": " default, vip ,,svip", "MAX_TOKENS_PER_USER": "5",
				"SEALING_KEY": "a2V5", "AWS_SAM_LOCAL": "true", "KMS_KEY_ID": "arn:aws:kms:us-east-1:1:key/k", "REVEALS_PER_MINUTE": "7", "LOG_LEVEL": "debug"},
			sealing: true,
			want: config.Config{TableName: "t", AllowedGroups: []string{"default", "vip", "svip"}, MaxTokensPerUser: 5,
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
			want: config.Config{TableName: "t", AllowedGroups: []string{"default"}, MaxTokensPerUser: 1000, KMSKeyID: "k",
				RevealsPerMinute: 30, LogLevel: slog.LevelInfo}},
		{name: "bad reveal limit", env: map[string]string{"TABLE_NAME": "t", "REVEALS_PER_MINUTE": "0"}, wantErr: true},
		{name: "legacy switches on", env: map[string]string{"TABLE_NAME": "t", "ACCEPT_LEGACY_KEYS": "true", "ACCEPT_LEGACY_ACCESS_TOKENS": " TRUE "},
			want: config.Config{TableName: "t", AllowedGroups: []string{"default"}, MaxTokensPerUser: 1000, RevealsPerMinute: 30,
				LogLevel: slog.LevelInfo, AcceptLegacyKeys: true, AcceptLegacyAccessTokens: true}},
		{name: "legacy switches off", env: map[string]string{"TABLE_NAME": "t", "ACCEPT_LEGACY_KEYS": "false", "ACCEPT_LEGACY_ACCESS_TOKENS": "false"},
			want: config.Config{TableName: "t", AllowedGroups: []string{"default"}, MaxTokensPerUser: 1000, RevealsPerMinute: 30, LogLevel: slog.LevelInfo}},
		{name: "legacy keys not a boolean", env: map[string]string{"TABLE_NAME": "t", "ACCEPT_LEGACY_KEYS": "yes"}, wantErr: true},
		{name: "legacy access tokens not a boolean", env: map[string]string{"TABLE_NAME": "t", "ACCEPT_LEGACY_ACCESS_TOKENS": "1"}, wantErr: true},
		{name: "budget zone", env: map[string]string{"TABLE_NAME": "t", "BUDGET_TIMEZONE": " Asia/Shanghai "},
			want: config.Config{TableName: "t", AllowedGroups: []string{"default"}, MaxTokensPerUser: 1000, RevealsPerMinute: 30,
				LogLevel: slog.LevelInfo, BudgetTimezone: "Asia/Shanghai"}},
		{name: "unknown budget zone", env: map[string]string{"TABLE_NAME": "t", "BUDGET_TIMEZONE": "Asia/Atlantis"}, wantErr: true},
		{name: "the machine's zone as budget zone", env: map[string]string{"TABLE_NAME": "t", "BUDGET_TIMEZONE": "Local"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := config.Load(func(k string) string { return tt.env[k] }, tt.sealing)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Load error = %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Load =\n%+v, want\n%+v", got, tt.want)
			}
		})
	}
}

func TestLogLevel(t *testing.T) {
	tests := []struct {
		value   string
		want    slog.Level
		wantErr bool
	}{
		{"", slog.LevelInfo, false},
		{"debug", slog.LevelDebug, false},
		{" WARN ", slog.LevelWarn, false},
		{"LOUD", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			got, err := config.LogLevel(func(k string) string { return map[string]string{"LOG_LEVEL": tt.value}[k] })
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("LogLevel(%q) = %v, %v; want %v (error %v)", tt.value, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestBudgetZone(t *testing.T) {
	for _, tt := range []struct{ env, want string }{{"", "UTC"}, {"UTC", "UTC"}, {"America/New_York", "America/New_York"}} {
		c, err := config.Load(func(k string) string { return map[string]string{"TABLE_NAME": "t", "BUDGET_TIMEZONE": tt.env}[k] }, false)
		if err != nil {
			t.Fatalf("Load with BUDGET_TIMEZONE=%q: %v", tt.env, err)
		}
		if got := c.BudgetZone().String(); got != tt.want {
			t.Errorf("BUDGET_TIMEZONE=%q: BudgetZone = %s, want %s", tt.env, got, tt.want)
		}
	}
}
