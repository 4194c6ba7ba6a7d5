package token_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/llmgw/token-service/internal/token"
)

func TestEffectiveStatus(t *testing.T) {
	tests := []struct {
		name string
		tok  token.Token
		want token.Status
	}{
		{"enabled", token.Token{Status: 1, RemainQuota: 5, ExpiredTime: -1}, token.StatusEnabled},
		{"disabled", token.Token{Status: 2, RemainQuota: 5, ExpiredTime: -1}, token.StatusDisabled},
		{"expired", token.Token{Status: 1, RemainQuota: 5, ExpiredTime: now.Unix() - 1}, token.StatusExpired},
		{"expires exactly now", token.Token{Status: 1, RemainQuota: 5, ExpiredTime: now.Unix()}, token.StatusExpired},
		{"exhausted", token.Token{Status: 1, RemainQuota: 0, ExpiredTime: -1}, token.StatusExhausted},
		{"unlimited never exhausted", token.Token{Status: 1, RemainQuota: 0, UnlimitedQuota: true, ExpiredTime: -1}, token.StatusEnabled},
		{"expired wins over exhausted", token.Token{Status: 1, RemainQuota: 0, ExpiredTime: 1}, token.StatusExpired},
		{"disabled but expired reads expired", token.Token{Status: 2, RemainQuota: 5, ExpiredTime: 1}, token.StatusExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.tok.EffectiveStatus(now); got != tt.want {
				t.Fatalf("EffectiveStatus = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestCheckEnable(t *testing.T) {
	expired := token.Token{Status: 1, RemainQuota: 5, ExpiredTime: 1}
	exhausted := token.Token{Status: 1, RemainQuota: 0, ExpiredTime: -1}
	if got := codeOf(expired.CheckEnable(now)); got != token.ETokenExpired {
		t.Errorf("expired: %q", got)
	}
	if got := codeOf(exhausted.CheckEnable(now)); got != token.ETokenExhausted {
		t.Errorf("exhausted: %q", got)
	}
	// Raising the expiry or the quota makes the token usable again.
	future := now.Add(time.Hour).Unix()
	fixed := token.Patch{ExpiredTime: &future}.Apply(expired)
	if err := fixed.CheckEnable(now); err != nil || fixed.EffectiveStatus(now) != token.StatusEnabled {
		t.Errorf("after raising the expiry: %v, status %d", err, fixed.EffectiveStatus(now))
	}
	q := int64(10)
	refilled := token.Patch{RemainQuota: &q}.Apply(exhausted)
	if err := refilled.CheckEnable(now); err != nil {
		t.Errorf("after raising the quota: %v", err)
	}
}

func TestPatchApplyChangesOnlyWhatItSets(t *testing.T) {
	orig := token.Token{
		ID: 7, UserID: "u", Name: "old", KeyMask: "sk-abcd**********wxyz", Status: 1, RemainQuota: 9,
		UsedQuota: 3, UnlimitedQuota: true, ModelLimitsEnabled: true, ModelLimits: []string{"gpt-4"},
		AllowIPs: []string{"1.1.1.1"}, Group: "default", ExpiredTime: -1, RPMLimit: 5, CreatedTime: 11, AccessedTime: 12,
	}
	name := "x"
	got := token.Patch{Name: &name}.Apply(orig)
	want := orig
	want.Name = "x"
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Apply = %+v, want %+v", got, want)
	}
	st := token.StatusDisabled
	if p := (token.Patch{Name: &name, Status: &st}).StatusOnly(); p.Name != nil || p.Status == nil {
		t.Fatalf("StatusOnly kept %+v", p)
	}
}
