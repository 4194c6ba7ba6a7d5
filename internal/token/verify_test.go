package token_test

import (
	"strings"
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
		{"pattern allows its prefix", with(func(t *token.Token) { t.ModelLimits = []string{"gpt-4o*"} }), false, "gpt-4o-mini", "10.1.2.3", ""},
		{"pattern allows the prefix itself", with(func(t *token.Token) { t.ModelLimits = []string{"gpt-4o*"} }), false, "gpt-4o", "10.1.2.3", ""},
		{"pattern refuses another model", with(func(t *token.Token) { t.ModelLimits = []string{"gpt-4o*"} }), false, "gpt-4", "10.1.2.3", token.VerifyModelNotAllowed},
		{"pattern refuses an empty model", with(func(t *token.Token) { t.ModelLimits = []string{"gpt-4o*"} }), false, "", "10.1.2.3", token.VerifyModelNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := token.CheckUse(tt.tok, tt.userDisabled, tt.model, tt.ip, now); got != tt.want {
				t.Errorf("CheckUse = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestModelAllowed(t *testing.T) {
	tests := []struct {
		name   string
		limits []string
		model  string
		want   bool
	}{
		{"exact", []string{"gpt-4"}, "gpt-4", true},
		{"exact is not a prefix", []string{"gpt-4"}, "gpt-4o", false},
		{"pattern: the prefix itself", []string{"gpt-4o*"}, "gpt-4o", true},
		{"pattern: a longer name", []string{"gpt-4o*"}, "gpt-4o-mini", true},
		{"pattern: a shorter name", []string{"gpt-4o*"}, "gpt-4", false},
		{"pattern: another family", []string{"gpt-4o*"}, "claude-3", false},
		{"pattern: case matters", []string{"gpt-4o*"}, "GPT-4o", false},
		{"pattern among exact entries", []string{"claude-3", "gpt-4o*"}, "gpt-4o-2024-08-06", true},
		{"pattern with a slash", []string{"openai/*"}, "openai/gpt-4o", true},
		{"no entries", nil, "gpt-4", false},
		{"empty model", []string{"gpt-4o*", ""}, "", false},
		// Stored before the patterns: a lone * and a * inside stay exact.
		{"stored lone * is exact", []string{"*"}, "gpt-4", false},
		{"stored lone * matches itself", []string{"*"}, "*", true},
		{"stored * inside is exact", []string{"g*pt"}, "gpt", false},
		{"stored exact name with a space", []string{"my model"}, "my model", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := token.ModelAllowed(tt.limits, tt.model); got != tt.want {
				t.Errorf("ModelAllowed(%q, %q) = %v, want %v", tt.limits, tt.model, got, tt.want)
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

func TestVerifyRequestKindWithRequestID(t *testing.T) {
	tests := []struct {
		name        string
		req         token.VerifyRequest
		want        token.Kind
		wantRequest bool
	}{
		{"hold", token.VerifyRequest{Consume: 5, RequestID: "r"}, token.KindCheck, true},
		{"settle", token.VerifyRequest{Consume: 5, Settle: true, RequestID: "r"}, token.KindSettle, true},
		{"settle of 0 is a settle with an id", token.VerifyRequest{Settle: true, RequestID: "r"}, token.KindSettle, true},
		{"refund", token.VerifyRequest{Consume: -5, RequestID: "r"}, token.KindRefund, true},
		{"plain verify ignores the id", token.VerifyRequest{RequestID: "r"}, token.KindCheck, false},
		{"hold without an id", token.VerifyRequest{Consume: 5}, token.KindCheck, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.req.Kind(); got != tt.want {
				t.Errorf("Kind = %d, want %d", got, tt.want)
			}
			if got := tt.req.HasRequest(); got != tt.wantRequest {
				t.Errorf("HasRequest = %v, want %v", got, tt.wantRequest)
			}
		})
	}
}

func TestCheckRequestID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"a", true},
		{"0b6f7d8e-2c4a-4f1e-9d3b-5a6c7e8f9a0b", true},
		{"req:1.2_3-x", true},
		{strings.Repeat("a", 128), true},
		{"", false},
		{strings.Repeat("a", 129), false},
		{"a b", false},
		{"a#b", false}, // the record's key separator
		{"a/b", false},
		{"é", false},
		{"a\x00", false},
	}
	for _, tt := range tests {
		if err := token.CheckRequestID(tt.id); (err == nil) != tt.ok {
			t.Errorf("CheckRequestID(%q) = %v, want ok %v", tt.id, err, tt.ok)
		} else if err != nil && token.ErrorCode(err) != token.EInvalidRequest {
			t.Errorf("CheckRequestID(%q): code %q, want %q", tt.id, token.ErrorCode(err), token.EInvalidRequest)
		}
	}
}

// The same event is the same kind, amount, model and client ip; the
// fingerprint does not run two fields together.
func TestFingerprint(t *testing.T) {
	base := token.VerifyRequest{Key: "k", Model: "gpt-4", ClientIP: "10.0.0.1", Consume: 100, RequestID: "r"}
	with := func(f func(*token.VerifyRequest)) token.VerifyRequest { r := base; f(&r); return r }
	same := []token.VerifyRequest{
		with(func(r *token.VerifyRequest) { r.Key = "another key of the token" }),
		with(func(r *token.VerifyRequest) { r.RequestID = "the id is the record's key" }),
	}
	for _, r := range same {
		if r.Fingerprint() != base.Fingerprint() {
			t.Errorf("%+v: fingerprint differs from %+v", r, base)
		}
	}
	others := map[string]token.VerifyRequest{
		"amount":       with(func(r *token.VerifyRequest) { r.Consume = 101 }),
		"model":        with(func(r *token.VerifyRequest) { r.Model = "gpt-4o" }),
		"client ip":    with(func(r *token.VerifyRequest) { r.ClientIP = "10.0.0.2" }),
		"kind":         with(func(r *token.VerifyRequest) { r.Settle = true }),
		"fields moved": with(func(r *token.VerifyRequest) { r.Model, r.ClientIP = "gpt-410.0.0.1", "" }),
		"refund":       with(func(r *token.VerifyRequest) { r.Consume = -100 }),
	}
	for name, r := range others {
		if r.Fingerprint() == base.Fingerprint() {
			t.Errorf("%s: same fingerprint as the base event", name)
		}
	}
	if n := len(base.Fingerprint()); n != 22 {
		t.Errorf("fingerprint of %d characters, want 22", n)
	}
	long := with(func(r *token.VerifyRequest) { r.Model = strings.Repeat("m", 60_000) })
	if n := len(long.Fingerprint()); n != 22 {
		t.Errorf("fingerprint of a long model: %d characters, want 22", n)
	}
}

// TestNextStep is the table of request states (README "The events and
// answers").
func TestNextStep(t *testing.T) {
	hold := token.VerifyRequest{Consume: 300, Model: "m", RequestID: "r"}
	settle := token.VerifyRequest{Consume: 120, Settle: true, Model: "m", RequestID: "r"}
	refund := token.VerifyRequest{Consume: -50, Model: "m", RequestID: "r"}
	other := func(r token.VerifyRequest) token.VerifyRequest { r.ClientIP = "10.0.0.9"; return r }
	record := func(state token.RequestState, by token.VerifyRequest) *token.Request {
		return &token.Request{State: state, Event: by.Fingerprint()}
	}
	tests := []struct {
		name string
		rec  *token.Request
		req  token.VerifyRequest
		want token.RequestStep
	}{
		{"hold from no record", nil, hold, token.StepApply},
		{"settle from no record", nil, settle, token.StepApply},
		{"refund from no record", nil, refund, token.StepNothingToRefund},
		{"same hold on held", record(token.RequestHeld, hold), hold, token.StepDuplicate},
		{"other hold on held", record(token.RequestHeld, hold), other(hold), token.StepConflict},
		{"settle on held", record(token.RequestHeld, hold), settle, token.StepApply},
		{"refund on held", record(token.RequestHeld, hold), refund, token.StepApply},
		{"hold on settled", record(token.RequestSettled, settle), hold, token.StepConflict},
		{"same settle on settled", record(token.RequestSettled, settle), settle, token.StepDuplicate},
		{"other final on settled", record(token.RequestSettled, settle), func() token.VerifyRequest { r := settle; r.Consume = 121; return r }(), token.StepConflict},
		{"settle from elsewhere on settled", record(token.RequestSettled, settle), other(settle), token.StepConflict},
		{"refund on settled", record(token.RequestSettled, settle), refund, token.StepApply},
		{"hold on refunded", record(token.RequestRefunded, refund), hold, token.StepConflict},
		{"settle on refunded", record(token.RequestRefunded, refund), settle, token.StepConflict},
		{"same refund on refunded", record(token.RequestRefunded, refund), refund, token.StepDuplicate},
		{"other amount on refunded", record(token.RequestRefunded, refund), func() token.VerifyRequest { r := refund; r.Consume = -49; return r }(), token.StepConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := token.NextStep(tt.rec, tt.req); got != tt.want {
				t.Errorf("NextStep = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestRequestLive(t *testing.T) {
	rec := &token.Request{ExpiresAt: now.Unix() + 10}
	tests := []struct {
		name string
		rec  *token.Request
		at   time.Time
		live bool
	}{
		{"none", nil, now, false},
		{"before its expiry", rec, now.Add(9 * time.Second), true},
		{"at its expiry", rec, now.Add(10 * time.Second), false},
		{"after it", rec, now.Add(time.Hour), false},
	}
	for _, tt := range tests {
		if got := tt.rec.Live(tt.at) != nil; got != tt.live {
			t.Errorf("%s: live %v, want %v", tt.name, got, tt.live)
		}
	}
}

// used_quota never passes 2^53-1: a charge that would is refused, and a
// settle's part above it is shortfall.
func TestUsedQuotaCap(t *testing.T) {
	const capped = token.MaxUsedQuota
	tests := []struct {
		name               string
		tok                token.Token
		consume            int64
		fits               bool
		charged, shortfall int64
	}{
		{"far from the cap", token.Token{UnlimitedQuota: true, UsedQuota: 10}, 100, true, 100, 0},
		{"up to the cap", token.Token{UnlimitedQuota: true, UsedQuota: capped - 100}, 100, true, 100, 0},
		{"one past the cap", token.Token{UnlimitedQuota: true, UsedQuota: capped - 99}, 100, false, 99, 1},
		{"at the cap", token.Token{UnlimitedQuota: true, UsedQuota: capped}, 1, false, 0, 1},
		{"limited, remain binds", token.Token{RemainQuota: 30, UsedQuota: capped - 100}, 50, false, 30, 20},
		{"limited, the cap binds", token.Token{RemainQuota: 500, UsedQuota: capped - 20}, 50, false, 20, 30},
		{"limited, fits", token.Token{RemainQuota: 500, UsedQuota: 0}, 500, true, 500, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := token.Fits(tt.tok, tt.consume); got != tt.fits {
				t.Errorf("Fits = %v, want %v", got, tt.fits)
			}
			c, s := token.SettleAmounts(tt.tok, tt.consume)
			if c != tt.charged || s != tt.shortfall {
				t.Errorf("SettleAmounts = %d, %d; want %d, %d", c, s, tt.charged, tt.shortfall)
			}
		})
	}
}

// Applied is what a transaction reports: the read state with the write's
// parts applied.
func TestWriteApplied(t *testing.T) {
	window := token.MinuteStart(now)
	limited := token.VerifyState{Token: token.Token{RemainQuota: 1000, UsedQuota: 50, RPMLimit: 10}, RPMWindow: window, RPMCount: 3}
	unlimited := token.VerifyState{Token: token.Token{UnlimitedQuota: true, RemainQuota: 7, UsedQuota: 50}}
	rec := &token.Request{ID: "r", Rev: 2}
	tests := []struct {
		name                string
		read                token.VerifyState
		w                   token.Write
		remain, used, count int64
	}{
		{"consume", limited, token.Write{Consume: 100, CountRate: true}, 900, 150, 4},
		{"consume, unlimited", unlimited, token.Write{Consume: 100}, 7, 150, 0},
		{"settle", limited, token.Write{Settle: 30, Shortfall: 5}, 970, 80, 3},
		{"give back", limited, token.Write{GiveBack: 40, GiveBackRemain: 30}, 1030, 10, 3},
		{"give back to an unlimited token's remain", unlimited, token.Write{GiveBack: 40, GiveBackRemain: 40}, 47, 10, 0},
		{"give back capped", token.VerifyState{Token: token.Token{RemainQuota: token.MaxQuota - 5, UsedQuota: 50}}, token.Write{GiveBack: 20, GiveBackRemain: 20}, token.MaxQuota, 30, 0},
		{"record only", limited, token.Write{Record: rec}, 1000, 50, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.w.Applied(tt.read, now)
			if got.Token.RemainQuota != tt.remain || got.Token.UsedQuota != tt.used || got.RPMCount != tt.count {
				t.Errorf("remain %d used %d rpm count %d; want %d, %d, %d", got.Token.RemainQuota, got.Token.UsedQuota, got.RPMCount, tt.remain, tt.used, tt.count)
			}
			if got.Token.AccessedTime != now.Unix() {
				t.Errorf("accessed_time %d, want %d", got.Token.AccessedTime, now.Unix())
			}
			if (got.Request != nil) != (tt.w.Record != nil) || (got.Request != nil && *got.Request != *rec) {
				t.Errorf("request %+v, want %+v", got.Request, tt.w.Record)
			}
		})
	}
	// The rpm window opens at now's minute when the one read is older.
	old := limited
	old.RPMWindow = window - 60
	if got := (token.Write{Consume: 1, CountRate: true}).Applied(old, now); got.RPMWindow != window || got.RPMCount != 1 {
		t.Errorf("an old window: window %d count %d, want %d, 1", got.RPMWindow, got.RPMCount, window)
	}
}
