package token_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/token/storetest"
)

func ptrTo[T any](v T) *T { return &v }

var now = time.Unix(1_800_000_000, 0)

func codeOf(err error) string { return token.ErrorCode(err) }

func TestParseID(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		code string
	}{
		{"1", 1, ""},
		{"42", 42, ""},
		{"000007", 7, ""},
		{"0", 0, token.EInvalidID},
		{"-1", 0, token.EInvalidID},
		{"+1", 0, token.EInvalidID},
		{"abc", 0, token.EInvalidID},
		{"1.5", 0, token.EInvalidID},
		{"1e3", 0, token.EInvalidID},
		{"", 0, token.EInvalidID},
		{" 1", 0, token.EInvalidID},
		{"99999999999999999999", 0, token.EInvalidID},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := token.ParseID(tt.in)
			if codeOf(err) != tt.code || got != tt.want {
				t.Fatalf("ParseID(%q) = %d, %v; want %d, %q", tt.in, got, err, tt.want, tt.code)
			}
		})
	}
}

func TestUniqueIDs(t *testing.T) {
	got, err := token.UniqueIDs([]int64{3, 1, 3, 2, 1})
	if err != nil || len(got) != 3 || got[0] != 3 || got[1] != 1 || got[2] != 2 {
		t.Fatalf("UniqueIDs = %v, %v", got, err)
	}
	many := make([]int64, 101)
	for i := range many {
		many[i] = int64(i + 1)
	}
	for name, ids := range map[string][]int64{
		"empty":    {},
		"zero":     {1, 0},
		"negative": {-5},
		"over 100": many,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := token.UniqueIDs(ids); codeOf(err) != token.EInvalidRequest {
				t.Fatalf("UniqueIDs err = %v, want %s", err, token.EInvalidRequest)
			}
		})
	}
	// 100 ids with duplicates beyond 100 entries are still over the limit:
	// the limit counts what the client sent.
	if _, err := token.UniqueIDs(many[:100]); err != nil {
		t.Fatalf("100 ids refused: %v", err)
	}
}

func TestCheckName(t *testing.T) {
	tests := []struct {
		name, in, code string
	}{
		{"ascii", "My API Token", ""},
		{"30 chinese characters", strings.Repeat("令", 30), ""},
		{"31 chinese characters", strings.Repeat("令", 31), token.ENameTooLong},
		{"30 ascii", strings.Repeat("a", 30), ""},
		{"31 ascii", strings.Repeat("a", 31), token.ENameTooLong},
		{"empty", "", token.ENameRequired},
		{"blank", "   ", token.ENameRequired},
		{"control character", "a\x00b", token.EInvalidName},
		{"invalid utf-8", "a\xffb", token.EInvalidName},
		{"zero-width only", "\u200b\u200b", token.EInvalidName},
		{"ideographic spaces only", "\u3000\u3000", token.ENameRequired},
		{"invalid wins over too long", strings.Repeat("a", 31) + "\u202e", token.EInvalidName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := codeOf(token.CheckName(tt.in)); got != tt.code {
				t.Fatalf("CheckName = %q, want %q", got, tt.code)
			}
		})
	}
}

func TestParseAllowIPs(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		code     string
	}{
		{"empty", "", []string{}, ""},
		{"upstream example", "192.168.1.1,10.0.0.1", []string{"192.168.1.1", "10.0.0.1"}, ""},
		{"newlines and spaces", " 192.168.1.1 \n10.0.0.0/8\r\n", []string{"192.168.1.1", "10.0.0.0/8"}, ""},
		{"ipv6 and cidr", "2001:db8::1,2001:db8::/32", []string{"2001:db8::1", "2001:db8::/32"}, ""},
		{"cidr masked", "10.1.2.3/8", []string{"10.0.0.0/8"}, ""},
		{"v4-mapped v6 unmapped", "::ffff:1.2.3.4", []string{"1.2.3.4"}, ""},
		{"duplicates", "1.1.1.1,1.1.1.1", []string{"1.1.1.1"}, ""},
		{"hostname", "example.com", nil, token.EInvalidAllowIPs},
		{"bad octet", "256.1.1.1", nil, token.EInvalidAllowIPs},
		{"bad prefix", "10.0.0.0/33", nil, token.EInvalidAllowIPs},
		{"zone", "fe80::1%eth0", nil, token.EInvalidAllowIPs},
		{"wildcard", "*", nil, token.EInvalidAllowIPs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := token.ParseAllowIPs(tt.in)
			if codeOf(err) != tt.code {
				t.Fatalf("err = %v, want %q", err, tt.code)
			}
			if tt.code == "" && strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIPAllowed(t *testing.T) {
	allow := []string{"192.168.1.1", "10.0.0.0/8", "2001:db8::/32"}
	tests := []struct {
		ip   string
		want bool
	}{
		{"192.168.1.1", true},
		{"192.168.1.2", false},
		{"10.200.3.4", true},
		{"::ffff:10.0.0.1", true},
		{"2001:db8:1::5", true},
		{"2001:db9::1", false},
		{"", false},
		{"not-an-ip", false},
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			if got := token.IPAllowed(allow, tt.ip); got != tt.want {
				t.Fatalf("IPAllowed(%q) = %v, want %v", tt.ip, got, tt.want)
			}
		})
	}
	if !token.IPAllowed(nil, "") {
		t.Fatal("an empty allow list must allow any caller")
	}
}

func TestNormalizeModelLimits(t *testing.T) {
	name128 := strings.Repeat("m", 128)
	tests := []struct {
		name string
		in   []string
		want []string // when code is ""
		code string
	}{
		{"trimmed, empty and duplicates dropped", []string{" gpt-4", " gpt-3.5-turbo", "", "gpt-4 "}, []string{"gpt-4", "gpt-3.5-turbo"}, ""},
		{"every allowed character", []string{"azAZ09._:/@+-"}, []string{"azAZ09._:/@+-"}, ""},
		{"provider paths and tags", []string{"openai/gpt-4o", "models/gemini-1.5-pro@001", "llama3:8b"}, []string{"openai/gpt-4o", "models/gemini-1.5-pro@001", "llama3:8b"}, ""},
		{"a pattern", []string{"gpt-4o*"}, []string{"gpt-4o*"}, ""},
		{"128 characters", []string{name128}, []string{name128}, ""},
		{"128 characters and a pattern's *", []string{name128 + "*"}, []string{name128 + "*"}, ""},
		{"129 characters", []string{name128 + "m"}, nil, token.EInvalidModels},
		{"* alone", []string{"*"}, nil, token.EInvalidModels},
		{"* inside", []string{"g*pt"}, nil, token.EInvalidModels},
		{"* first", []string{"*gpt"}, nil, token.EInvalidModels},
		{"two *", []string{"gpt**"}, nil, token.EInvalidModels},
		{"a comma", []string{"a,b"}, nil, token.EInvalidModels},
		{"a space inside", []string{"my model"}, nil, token.EInvalidModels},
		{"a quote", []string{`gpt"4`}, nil, token.EInvalidModels},
		{"a backslash", []string{`gpt\4`}, nil, token.EInvalidModels},
		{"angle brackets", []string{"<b>"}, nil, token.EInvalidModels},
		{"non-ASCII letters", []string{"模型"}, nil, token.EInvalidModels},
		{"a control character", []string{"gpt\x00"}, nil, token.EInvalidModels},
		{"invalid utf-8", []string{"gpt\xff"}, nil, token.EInvalidModels},
		{"200 entries of 4096 bytes", storetest.ModelLimitsOf(200, 4096), storetest.ModelLimitsOf(200, 4096), ""},
		{"201 entries", storetest.ModelLimitsOf(201, 4000), nil, token.EInvalidModels},
		{"4097 bytes", storetest.ModelLimitsOf(200, 4097), nil, token.EInvalidModels},
		{"4097 bytes in few entries", storetest.ModelLimitsOf(40, 4097), nil, token.EInvalidModels},
		{"duplicates count once", append(storetest.ModelLimitsOf(200, 4096), storetest.ModelLimitsOf(200, 4096)...), storetest.ModelLimitsOf(200, 4096), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := token.NormalizeModelLimits(tt.in)
			if codeOf(err) != tt.code {
				t.Fatalf("err = %v, want %q", err, tt.code)
			}
			if tt.code == "" && !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestListHelpersAreAtTheLimits(t *testing.T) {
	models := storetest.ModelLimitsOf(token.MaxModels, token.MaxModelLimitsBytes)
	if n, size := len(models), len(strings.Join(models, ",")); n != 200 || size != 4096 {
		t.Errorf("ModelLimitsOf: %d entries, %d bytes; want 200 and 4096", n, size)
	}
	ips := storetest.AllowIPsOf(token.MaxAllowIPs, token.MaxAllowIPsBytes)
	if n, size := len(ips), len(strings.Join(ips, ",")); n != 100 || size != 2048 {
		t.Errorf("AllowIPsOf: %d entries, %d bytes; want 100 and 2048", n, size)
	}
	// Canonical already: stored as they are, so their size is the stored size.
	got, err := token.ParseAllowIPs(strings.Join(ips, ","))
	if err != nil || !slices.Equal(got, ips) {
		t.Errorf("ParseAllowIPs(AllowIPsOf) = %d entries, %v; want them unchanged", len(got), err)
	}
}

func TestAllowIPsLimits(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		code string
	}{
		{"100 entries of 2048 bytes", storetest.AllowIPsOf(100, 2048), ""},
		{"101 entries", storetest.AllowIPsOf(101, 2000), token.EInvalidAllowIPs},
		{"2049 bytes", storetest.AllowIPsOf(100, 2049), token.EInvalidAllowIPs},
		{"2049 bytes in few entries", storetest.AllowIPsOf(60, 2049), token.EInvalidAllowIPs},
		{"duplicates count once", append(storetest.AllowIPsOf(100, 2048), storetest.AllowIPsOf(100, 2048)...), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := token.ParseAllowIPs(strings.Join(tt.in, "\n"))
			if codeOf(err) != tt.code {
				t.Fatalf("err = %v, want %q", err, tt.code)
			}
		})
	}
}

func validSpec() token.Spec {
	return token.Spec{Name: "My API Token", ExpiredTime: -1, RemainQuota: 1000, Count: 1, Group: "default"}
}

func TestValidateSpec(t *testing.T) {
	rules := token.Rules{AllowedGroups: []string{"default", "vip"}}
	tests := []struct {
		name   string
		modify func(*token.Spec)
		code   string
	}{
		{"valid", func(*token.Spec) {}, ""},
		{"empty group", func(s *token.Spec) { s.Group = "" }, ""},
		{"other allowed group", func(s *token.Spec) { s.Group = "vip" }, ""},
		{"unknown group", func(s *token.Spec) { s.Group = "admin" }, token.EInvalidGroup},
		{"future expiry", func(s *token.Spec) { s.ExpiredTime = now.Unix() + 60 }, ""},
		{"expiry now", func(s *token.Spec) { s.ExpiredTime = now.Unix() }, token.EInvalidExpiry},
		{"expiry past", func(s *token.Spec) { s.ExpiredTime = 1640995200 }, token.EInvalidExpiry},
		{"expiry -2", func(s *token.Spec) { s.ExpiredTime = -2 }, token.EInvalidExpiry},
		{"quota max", func(s *token.Spec) { s.RemainQuota = token.MaxQuota }, ""},
		{"quota over max", func(s *token.Spec) { s.RemainQuota = token.MaxQuota + 1 }, token.EInvalidQuota},
		{"quota negative", func(s *token.Spec) { s.RemainQuota = -1 }, token.EInvalidQuota},
		{"rpm negative", func(s *token.Spec) { s.RPMLimit = -1 }, token.EInvalidRPMLimit},
		{"rpm over max", func(s *token.Spec) { s.RPMLimit = token.MaxRPMLimit + 1 }, token.EInvalidRPMLimit},
		{"count 0", func(s *token.Spec) { s.Count = 0 }, token.EInvalidCount},
		{"count 49", func(s *token.Spec) { s.Count = 49; s.Name = "n" }, ""},
		{"count 50", func(s *token.Spec) { s.Count = 50 }, token.EInvalidCount},
		{"count names too long", func(s *token.Spec) { s.Name = strings.Repeat("x", 29); s.Count = 2 }, token.ENameTooLong},
		{"count names fit", func(s *token.Spec) { s.Name = strings.Repeat("x", 28); s.Count = 9 }, ""},
		{"count 10 names pass", func(s *token.Spec) { s.Name = strings.Repeat("x", 28); s.Count = 10 }, token.ENameTooLong},
		{"bad ip", func(s *token.Spec) { s.AllowIPs = []string{"1.2.3"} }, token.EInvalidAllowIPs},
		{"bad name", func(s *token.Spec) { s.Name = "\u202egnp.exe" }, token.EInvalidName},
		{"model pattern", func(s *token.Spec) { s.ModelLimits = []string{"gpt-4o*"} }, ""},
		{"lone * model", func(s *token.Spec) { s.ModelLimits = []string{"*"} }, token.EInvalidModels},
		{"largest lists", func(s *token.Spec) {
			s.ModelLimits, s.AllowIPs = storetest.ModelLimitsOf(200, 4096), storetest.AllowIPsOf(100, 2048)
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSpec()
			tt.modify(&s)
			if got := codeOf(rules.Validate(&s, now)); got != tt.code {
				t.Fatalf("Validate = %q, want %q", got, tt.code)
			}
		})
	}
}

func TestSpecNamesAndTokens(t *testing.T) {
	s := validSpec()
	s.Count = 3
	toks, err := s.Tokens("u1", now)
	if err != nil {
		t.Fatal(err)
	}
	wantNames := []string{"My API Token", "My API Token-2", "My API Token-3"}
	for i, tok := range toks {
		if tok.Name != wantNames[i] || tok.Status != token.StatusEnabled || tok.UserID != "u1" ||
			tok.KeyHash != token.HashKey(tok.Key) || tok.KeyMask != token.MaskKey(tok.Key) || tok.CreatedTime != now.Unix() {
			t.Errorf("token %d = %+v", i, tok)
		}
	}
}

func TestValidatePatch(t *testing.T) {
	rules := token.Rules{AllowedGroups: []string{"default"}}
	status := func(s token.Status) *token.Status { return &s }
	i64 := func(v int64) *int64 { return &v }
	str := func(v string) *string { return &v }
	tests := []struct {
		name string
		p    token.Patch
		code string
	}{
		{"empty", token.Patch{}, ""},
		{"name", token.Patch{Name: str("x")}, ""},
		{"long name", token.Patch{Name: str(strings.Repeat("名", 31))}, token.ENameTooLong},
		{"status 1", token.Patch{Status: status(1)}, ""},
		{"status 2", token.Patch{Status: status(2)}, ""},
		{"status 3", token.Patch{Status: status(3)}, token.EInvalidStatus},
		{"status 4", token.Patch{Status: status(4)}, token.EInvalidStatus},
		{"status 0", token.Patch{Status: status(0)}, token.EInvalidStatus},
		{"past expiry", token.Patch{ExpiredTime: i64(1)}, token.EInvalidExpiry},
		{"bad group", token.Patch{Group: str("nope")}, token.EInvalidGroup},
		{"bad quota", token.Patch{RemainQuota: i64(-5)}, token.EInvalidQuota},
		{"invisible name", token.Patch{Name: str("\u200b")}, token.EInvalidName},
		{"model pattern", token.Patch{ModelLimits: &[]string{"gpt-4o*"}}, ""},
		{"model * inside", token.Patch{ModelLimits: &[]string{"g*pt"}}, token.EInvalidModels},
		{"201 models", token.Patch{ModelLimits: ptrTo(storetest.ModelLimitsOf(201, 4000))}, token.EInvalidModels},
		{"2049 bytes of ips", token.Patch{AllowIPs: ptrTo(storetest.AllowIPsOf(100, 2049))}, token.EInvalidAllowIPs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.p
			if got := codeOf(rules.ValidatePatch(&p, now)); got != tt.code {
				t.Fatalf("ValidatePatch = %q, want %q", got, tt.code)
			}
		})
	}
}

func FuzzParseAllowIPs(f *testing.F) {
	for _, s := range []string{"", "192.168.1.1,10.0.0.1", "10.0.0.0/8\n::1", "fe80::1%eth0", "1.2.3.4/40", ",,,\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ips, err := token.ParseAllowIPs(s)
		if err != nil {
			if codeOf(err) != token.EInvalidAllowIPs {
				t.Fatalf("unexpected error code %q", codeOf(err))
			}
			return
		}
		// Canonical output parses to itself.
		again, err := token.ParseAllowIPs(strings.Join(ips, ","))
		if err != nil || strings.Join(again, ",") != strings.Join(ips, ",") {
			t.Fatalf("canonical form %q does not round-trip: %q, %v", ips, again, err)
		}
	})
}

// FuzzNormalizeModelLimits: the canonical form of any comma-separated list
// of model names normalizes to itself.
func FuzzNormalizeModelLimits(f *testing.F) {
	for _, s := range []string{"", "gpt-4,gpt-3.5-turbo", " a , ,b,a", "\x00", "gpt-4o*,claude*", "*", "g*pt"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		models, err := token.NormalizeModelLimits(strings.Split(s, ","))
		if err != nil {
			if codeOf(err) != token.EInvalidModels {
				t.Fatalf("unexpected error code %q", codeOf(err))
			}
			return
		}
		again, err := token.NormalizeModelLimits(strings.Split(strings.Join(models, ","), ","))
		if err != nil || strings.Join(again, ",") != strings.Join(models, ",") {
			t.Fatalf("canonical form %q does not round-trip: %q, %v", models, again, err)
		}
	})
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"1", "0", "-1", "abc", "18446744073709551616"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := token.ParseID(s)
		if err == nil && id <= 0 {
			t.Fatalf("ParseID(%q) = %d without error", s, id)
		}
	})
}
