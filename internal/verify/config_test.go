package verify_test

import (
	"testing"
	"time"

	"github.com/llmgw/token-service/internal/verify"
)

func TestRecordLifetimeFromEnv(t *testing.T) {
	tests := []struct {
		value   string
		want    time.Duration
		wantErr bool
	}{
		{"", 7 * 24 * time.Hour, false},
		{"604800", 7 * 24 * time.Hour, false},
		{" 3600 ", time.Hour, false},
		{"1", time.Second, false},
		{"0", 0, true},
		{"-5", 0, true},
		{"1.5", 0, true},
		{"7d", 0, true},
		{"99999999999999", 0, true},
	}
	for _, tt := range tests {
		got, err := verify.RecordLifetimeFromEnv(func(name string) string {
			if name == verify.EnvRequestRecordSeconds {
				return tt.value
			}
			return ""
		})
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("REQUEST_RECORD_SECONDS=%q: %v, %v; want %v, error %v", tt.value, got, err, tt.want, tt.wantErr)
		}
	}
}
