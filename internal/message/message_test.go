package message_test

import (
	"strings"
	"testing"
	"time"

	"github.com/llmgw/token-service/internal/message"
	"github.com/llmgw/token-service/internal/token"
)

// TestVerifyMessages: every verify answer code has its own text in each
// language (internal/api's tests hold the HTTP codes to the catalog).
func TestVerifyMessages(t *testing.T) {
	codes := []string{
		token.VerifyInvalidRequest, token.VerifyNotFound, token.VerifyDisabled, token.VerifyExpired, token.VerifyExhausted,
		token.VerifyIPNotAllowed, token.VerifyModelNotAllowed, token.VerifyRateLimited, token.VerifyBudgetExceeded, token.VerifyInsufficientQuota,
		token.VerifyRequestConflict, token.KeyNotProvided,
	}
	internal := message.Text(token.EInternal, message.ZH)
	for _, code := range codes {
		t.Run(code, func(t *testing.T) {
			zh, en := message.Text(code, message.ZH), message.Text(code, message.EN)
			if !message.Has(code) || zh == en || zh == internal {
				t.Errorf("code %q: zh %q en %q", code, zh, en)
			}
		})
	}
}

func TestUnknownCodeReadsAsInternalError(t *testing.T) {
	for _, lang := range []message.Lang{message.ZH, message.EN} {
		if got, want := message.Text("no_such_code", lang), message.Text(token.EInternal, lang); got != want {
			t.Errorf("lang %d: %q, want %q", lang, got, want)
		}
	}
	if message.Has("no_such_code") {
		t.Error("Has(no_such_code) = true")
	}
}

// TestInvalidCountSpeaksOfTheCount: a generated name over the length limit
// is name_too_long, so invalid_count's text names the count's range only.
func TestInvalidCountSpeaksOfTheCount(t *testing.T) {
	tests := []struct {
		name string
		spec token.Spec
		want string
	}{
		{"count 50", token.Spec{Name: "n", Count: 50, ExpiredTime: token.NeverExpires}, token.EInvalidCount},
		{"name-49 too long", token.Spec{Name: "abcdefghijklmnopqrstuvwxyz01", Count: 49, ExpiredTime: token.NeverExpires}, token.ENameTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.spec
			if got := token.ErrorCode(token.Rules{}.Validate(&s, time.Unix(0, 0))); got != tt.want {
				t.Fatalf("Validate: code %q, want %q", got, tt.want)
			}
		})
	}
	if zh := message.Text(token.EInvalidCount, message.ZH); strings.Contains(zh, "名称") {
		t.Errorf("invalid_count zh text %q speaks of names", zh)
	}
}
