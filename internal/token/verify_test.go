package token_test

import (
	"testing"
	"time"

	"github.com/llmgw/token-service/internal/token"
)

func TestCheckUse(t *testing.T) {
	usable := token.Token{
		Status: token.StatusEnabled, RemainQuota: 10, ExpiredTime: token.NeverExpires,
		AllowIPs: []string{"10.0.0.0/8", "2001:db8::1"}, ModelLimitsEnabled: true, ModelLimits: []string{"gpt-4", "claude"},
	}
	with := func(f func(*token.Token)) token.Token {
		c := usable
		f(&c)
		return c
	}
	tests := []struct {
		name         string
		tok          token.Token
		userDisabled bool
		model, ip    string
		want         string
	}{
		{"usable", usable, false, "gpt-4", "10.1.2.3", ""},
		{"ipv6 listed", usable, false, "claude", "2001:db8::1", ""},
		{"ipv4-mapped ipv6 in range", usable, false, "gpt-4", "::ffff:10.0.0.1", ""},
		{"token disabled", with(func(t *token.Token) { t.Status = token.StatusDisabled }), false, "gpt-4", "10.1.2.3", token.VerifyDisabled},
		{"user disabled", usable, true, "gpt-4", "10.1.2.3", token.VerifyDisabled},
		{"disabled wins over expired", with(func(t *token.Token) { t.Status = token.StatusDisabled; t.ExpiredTime = 1 }), false, "gpt-4", "10.1.2.3", token.VerifyDisabled},
		{"expired", with(func(t *token.Token) { t.ExpiredTime = now.Unix() }), false, "gpt-4", "10.1.2.3", token.VerifyExpired},
		{"expires after now", with(func(t *token.Token) { t.ExpiredTime = now.Unix() + 1 }), false, "gpt-4", "10.1.2.3", ""},
		{"expired wins over exhausted", with(func(t *token.Token) { t.ExpiredTime = 5; t.RemainQuota = 0 }), false, "gpt-4", "10.1.2.3", token.VerifyExpired},
		{"exhausted", with(func(t *token.Token) { t.RemainQuota = 0 }), false, "gpt-4", "10.1.2.3", token.VerifyExhausted},
		{"unlimited with no quota", with(func(t *token.Token) { t.RemainQuota = 0; t.UnlimitedQuota = true }), false, "gpt-4", "10.1.2.3", ""},
		{"exhausted wins over ip", with(func(t *token.Token) { t.RemainQuota = 0 }), false, "gpt-4", "", token.VerifyExhausted},
		{"ip outside", usable, false, "gpt-4", "192.168.0.1", token.VerifyIPNotAllowed},
		{"ip empty", usable, false, "gpt-4", "", token.VerifyIPNotAllowed},
		{"ip garbage", usable, false, "gpt-4", "not-an-ip", token.VerifyIPNotAllowed},
		{"any ip when none set", with(func(t *token.Token) { t.AllowIPs = nil }), false, "gpt-4", "", ""},
		{"ip wins over model", usable, false, "other", "", token.VerifyIPNotAllowed},
		{"model not listed", usable, false, "gpt-4o", "10.1.2.3", token.VerifyModelNotAllowed},
		{"model empty", usable, false, "", "10.1.2.3", token.VerifyModelNotAllowed},
		{"model case matters", usable, false, "GPT-4", "10.1.2.3", token.VerifyModelNotAllowed},
		{"limits off", with(func(t *token.Token) { t.ModelLimitsEnabled = false }), false, "", "10.1.2.3", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := token.CheckUse(tt.tok, tt.userDisabled, tt.model, tt.ip, now); got != tt.want {
				t.Errorf("CheckUse = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestVerifyRequestKind(t *testing.T) {
	tests := []struct {
		name string
		req  token.VerifyRequest
		want token.Kind
	}{
		{"plain", token.VerifyRequest{}, token.KindCheck},
		{"consume", token.VerifyRequest{Consume: 5}, token.KindCheck},
		{"settle", token.VerifyRequest{Consume: 5, Settle: true}, token.KindSettle},
		{"settle of nothing is a plain verify", token.VerifyRequest{Settle: true}, token.KindCheck},
		{"refund", token.VerifyRequest{Consume: -5}, token.KindRefund},
		{"refund with settle", token.VerifyRequest{Consume: -5, Settle: true}, token.KindRefund},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.req.Kind(); got != tt.want {
				t.Errorf("Kind = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestCheckConsume(t *testing.T) {
	tests := []struct {
		consume int64
		ok      bool
	}{{0, true}, {token.MaxQuota, true}, {-token.MaxQuota, true}, {token.MaxQuota + 1, false}, {-token.MaxQuota - 1, false}}
	for _, tt := range tests {
		err := token.VerifyRequest{Consume: tt.consume}.CheckConsume()
		if (err == nil) != tt.ok {
			t.Errorf("CheckConsume(%d) = %v, want ok %v", tt.consume, err, tt.ok)
		}
	}
}

func TestMinuteWindow(t *testing.T) {
	tests := []struct {
		unix       int64
		start, ret int64
	}{
		{1_800_000_020, 1_800_000_000, 40},
		{1_800_000_000, 1_800_000_000, 60},
		{1_800_000_059, 1_800_000_000, 1},
		{1_800_000_060, 1_800_000_060, 60},
		{-30, -60, 30}, // before 1970 still floors
	}
	for _, tt := range tests {
		at := time.Unix(tt.unix, 500)
		if got := token.MinuteStart(at); got != tt.start {
			t.Errorf("MinuteStart(%d) = %d, want %d", tt.unix, got, tt.start)
		}
		if got := token.RetryAfter(at); got != tt.ret {
			t.Errorf("RetryAfter(%d) = %d, want %d", tt.unix, got, tt.ret)
		}
	}
}

func TestSettleAmounts(t *testing.T) {
	tests := []struct {
		name               string
		tok                token.Token
		consume            int64
		charged, shortfall int64
	}{
		{"fits", token.Token{RemainQuota: 500}, 300, 300, 0},
		{"short", token.Token{RemainQuota: 100}, 300, 100, 200},
		{"nothing left", token.Token{RemainQuota: 0}, 300, 0, 300},
		{"unlimited", token.Token{UnlimitedQuota: true, RemainQuota: 7}, 300, 300, 0},
		{"large remain", token.Token{RemainQuota: token.MaxQuota - 10}, 1, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s := token.SettleAmounts(tt.tok, tt.consume)
			if c != tt.charged || s != tt.shortfall {
				t.Errorf("SettleAmounts = %d, %d; want %d, %d", c, s, tt.charged, tt.shortfall)
			}
		})
	}
}
