package token_test

import (
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/llmgw/token-service/internal/token"
)

func TestCheckBudgets(t *testing.T) {
	tests := []struct {
		name string
		in   token.Budgets
		code string
	}{
		{"nil", nil, ""},
		{"empty", token.Budgets{}, ""},
		{"every period", token.Budgets{"minute": 1, "hour": 2, "day": 3, "week": 4, "month": 5}, ""},
		{"zero removes", token.Budgets{"day": 0}, ""},
		{"at the quota limit", token.Budgets{"day": token.MaxQuota}, ""},
		{"over the quota limit", token.Budgets{"day": token.MaxQuota + 1}, token.EInvalidBudgets},
		{"negative", token.Budgets{"minute": -1}, token.EInvalidBudgets},
		{"unknown period", token.Budgets{"year": 10}, token.EInvalidBudgets},
		{"period in another case", token.Budgets{"Day": 10}, token.EInvalidBudgets},
		{"empty period", token.Budgets{"": 10}, token.EInvalidBudgets},
		{"a good and a bad period", token.Budgets{"day": 10, "fortnight": 10}, token.EInvalidBudgets},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := codeOf(token.CheckBudgets(tt.in)); got != tt.code {
				t.Errorf("CheckBudgets(%v) code = %q, want %q", tt.in, got, tt.code)
			}
		})
	}
}

func TestCheckBudgetTimezone(t *testing.T) {
	tests := []struct {
		in   string
		code string
	}{
		{"", ""},
		{"UTC", ""},
		{"Asia/Shanghai", ""},
		{"America/New_York", ""},
		{"Etc/GMT+8", ""},
		{"Local", token.EInvalidBudgets},
		{"Mars/Olympus_Mons", token.EInvalidBudgets},
		{"../../etc/passwd", token.EInvalidBudgets},
		{"/etc/localtime", token.EInvalidBudgets},
		{"Asia/" + strings.Repeat("x", token.MaxBudgetTimezoneLength), token.EInvalidBudgets},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := codeOf(token.CheckBudgetTimezone(tt.in)); got != tt.code {
				t.Errorf("CheckBudgetTimezone(%q) code = %q, want %q", tt.in, got, tt.code)
			}
		})
	}
}

func TestValidateBudgets(t *testing.T) {
	rules := token.Rules{AllowedGroups: []string{"default"}}
	spec := func(b token.Budgets, zone string) token.Spec {
		return token.Spec{Name: "n", Count: 1, ExpiredTime: token.NeverExpires, Budgets: b, BudgetTimezone: zone}
	}
	tests := []struct {
		name string
		in   token.Spec
		want token.Budgets
		code string
	}{
		{"none", spec(nil, ""), nil, ""},
		{"empty object is none", spec(token.Budgets{}, ""), nil, ""},
		{"zeros are no windows", spec(token.Budgets{"day": 100, "minute": 0}, "Asia/Shanghai"), token.Budgets{"day": 100}, ""},
		{"only zeros", spec(token.Budgets{"day": 0}, ""), nil, ""},
		{"unknown period", spec(token.Budgets{"year": 1}, ""), nil, token.EInvalidBudgets},
		{"over the limit", spec(token.Budgets{"day": token.MaxQuota + 1}, ""), nil, token.EInvalidBudgets},
		{"unknown zone", spec(token.Budgets{"day": 1}, "Nowhere/City"), nil, token.EInvalidBudgets},
		{"the machine's zone", spec(nil, "Local"), nil, token.EInvalidBudgets},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.in
			err := rules.Validate(&s, now)
			if got := codeOf(err); got != tt.code {
				t.Fatalf("Validate code = %q (%v), want %q", got, err, tt.code)
			}
			if err == nil && !reflect.DeepEqual(s.Budgets, tt.want) {
				t.Errorf("Budgets = %#v, want %#v", s.Budgets, tt.want)
			}
		})
	}
}

func TestValidatePatchBudgets(t *testing.T) {
	rules := token.Rules{}
	tests := []struct {
		name string
		in   token.Patch
		want *token.Budgets
		code string
	}{
		{"absent", token.Patch{}, nil, ""},
		{"empty object changes nothing", token.Patch{Budgets: &token.Budgets{}}, nil, ""},
		{"zero is kept: it removes", token.Patch{Budgets: &token.Budgets{"day": 0, "hour": 7}}, &token.Budgets{"day": 0, "hour": 7}, ""},
		{"negative", token.Patch{Budgets: &token.Budgets{"day": -5}}, nil, token.EInvalidBudgets},
		{"unknown period", token.Patch{Budgets: &token.Budgets{"daily": 5}}, nil, token.EInvalidBudgets},
		{"zone", token.Patch{BudgetTimezone: ptrTo("Europe/Berlin")}, nil, ""},
		{"default zone", token.Patch{BudgetTimezone: ptrTo("")}, nil, ""},
		{"unknown zone", token.Patch{BudgetTimezone: ptrTo("Europe/Atlantis")}, nil, token.EInvalidBudgets},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.in
			err := rules.ValidatePatch(&p, now)
			if got := codeOf(err); got != tt.code {
				t.Fatalf("ValidatePatch code = %q (%v), want %q", got, err, tt.code)
			}
			if err == nil && !reflect.DeepEqual(p.Budgets, tt.want) {
				t.Errorf("Budgets = %v, want %v", p.Budgets, tt.want)
			}
		})
	}
	p := token.Patch{Budgets: &token.Budgets{}}
	if err := rules.ValidatePatch(&p, now); err != nil || !p.Empty() {
		t.Errorf("a patch of budgets {} is empty = %v (%v), want true", p.Empty(), err)
	}
}

func TestPatchApplyBudgets(t *testing.T) {
	day := token.BudgetWindow{Start: 1_799_971_200, Used: 300}
	minute := token.BudgetWindow{Start: 1_799_999_940, Used: 20}
	stored := token.Token{
		Name:           "t",
		Budgets:        token.Budgets{"day": 1000, "minute": 50},
		BudgetTimezone: "Asia/Shanghai",
		Windows:        map[token.Period]token.BudgetWindow{"day": day, "minute": minute},
	}
	tests := []struct {
		name        string
		patch       token.Patch
		wantBudgets token.Budgets
		wantZone    string
		wantWindows map[token.Period]token.BudgetWindow
	}{
		{"nothing", token.Patch{Name: ptrTo("x")},
			token.Budgets{"day": 1000, "minute": 50}, "Asia/Shanghai", map[token.Period]token.BudgetWindow{"day": day, "minute": minute}},
		{"a new limit keeps used", token.Patch{Budgets: &token.Budgets{"day": 200}},
			token.Budgets{"day": 200, "minute": 50}, "Asia/Shanghai", map[token.Period]token.BudgetWindow{"day": day, "minute": minute}},
		{"zero removes the window and its state", token.Patch{Budgets: &token.Budgets{"minute": 0}},
			token.Budgets{"day": 1000}, "Asia/Shanghai", map[token.Period]token.BudgetWindow{"day": day}},
		{"a new period", token.Patch{Budgets: &token.Budgets{"week": 5000}},
			token.Budgets{"day": 1000, "minute": 50, "week": 5000}, "Asia/Shanghai", map[token.Period]token.BudgetWindow{"day": day, "minute": minute}},
		{"every window removed", token.Patch{Budgets: &token.Budgets{"minute": 0, "day": 0, "hour": 0}},
			nil, "Asia/Shanghai", nil},
		{"the same zone keeps the windows", token.Patch{BudgetTimezone: ptrTo("Asia/Shanghai")},
			token.Budgets{"day": 1000, "minute": 50}, "Asia/Shanghai", map[token.Period]token.BudgetWindow{"day": day, "minute": minute}},
		{"a new zone starts every window afresh", token.Patch{BudgetTimezone: ptrTo("Europe/Berlin"), Budgets: &token.Budgets{"day": 10}},
			token.Budgets{"day": 10, "minute": 50}, "Europe/Berlin", nil},
		{"back to the default zone", token.Patch{BudgetTimezone: ptrTo("")},
			token.Budgets{"day": 1000, "minute": 50}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := stored
			before.Budgets = maps.Clone(stored.Budgets)
			before.Windows = maps.Clone(stored.Windows)
			got := tt.patch.Apply(stored)
			if !reflect.DeepEqual(got.Budgets, tt.wantBudgets) || got.BudgetTimezone != tt.wantZone || !reflect.DeepEqual(got.Windows, tt.wantWindows) {
				t.Errorf("Apply = budgets %v zone %q windows %v, want %v %q %v",
					got.Budgets, got.BudgetTimezone, got.Windows, tt.wantBudgets, tt.wantZone, tt.wantWindows)
			}
			if !reflect.DeepEqual(stored, before) {
				t.Errorf("Apply changed the token it was given: %+v, was %+v", stored, before)
			}
		})
	}
}

func TestBudgetUsage(t *testing.T) {
	shanghai, err := token.LoadZone("Asia/Shanghai", "")
	if err != nil {
		t.Fatal(err)
	}
	// 2027-01-15 12:00:30 in Shanghai (04:00:30 UTC).
	clock := time.Date(2027, 1, 15, 12, 0, 30, 0, shanghai)
	todaySH := time.Date(2027, 1, 15, 0, 0, 0, 0, shanghai).Unix()
	tomorrowSH := time.Date(2027, 1, 16, 0, 0, 0, 0, shanghai).Unix()
	tomorrowUTC := time.Date(2027, 1, 16, 0, 0, 0, 0, time.UTC).Unix()
	minuteStart := time.Date(2027, 1, 15, 12, 0, 0, 0, shanghai).Unix()
	tests := []struct {
		name string
		tok  token.Token
		def  *time.Location
		want map[token.Period]token.BudgetUsage
	}{
		{"no budgets", token.Token{}, nil, map[token.Period]token.BudgetUsage{}},
		{"a window never charged", token.Token{Budgets: token.Budgets{"day": 1000}, BudgetTimezone: "Asia/Shanghai"}, nil,
			map[token.Period]token.BudgetUsage{"day": {Limit: 1000, Used: 0, ResetsAt: tomorrowSH}}},
		{"current windows count", token.Token{
			Budgets: token.Budgets{"day": 1000, "minute": 50}, BudgetTimezone: "Asia/Shanghai",
			Windows: map[token.Period]token.BudgetWindow{"day": {Start: todaySH, Used: 300}, "minute": {Start: minuteStart, Used: 20}},
		}, nil, map[token.Period]token.BudgetUsage{
			"day":    {Limit: 1000, Used: 300, ResetsAt: tomorrowSH},
			"minute": {Limit: 50, Used: 20, ResetsAt: minuteStart + 60},
		}},
		{"ended windows read 0 with their next reset", token.Token{
			Budgets: token.Budgets{"day": 1000, "minute": 50}, BudgetTimezone: "Asia/Shanghai",
			Windows: map[token.Period]token.BudgetWindow{"day": {Start: todaySH - 86400, Used: 900}, "minute": {Start: minuteStart - 60, Used: 50}},
		}, nil, map[token.Period]token.BudgetUsage{
			"day":    {Limit: 1000, Used: 0, ResetsAt: tomorrowSH},
			"minute": {Limit: 50, Used: 0, ResetsAt: minuteStart + 60},
		}},
		{"no zone of its own: the default", token.Token{Budgets: token.Budgets{"day": 5}}, shanghai,
			map[token.Period]token.BudgetUsage{"day": {Limit: 5, ResetsAt: tomorrowSH}}},
		{"no zone and no default: UTC", token.Token{Budgets: token.Budgets{"day": 5}}, nil,
			map[token.Period]token.BudgetUsage{"day": {Limit: 5, ResetsAt: tomorrowUTC}}},
		{"its own zone wins over the default", token.Token{Budgets: token.Budgets{"day": 5}, BudgetTimezone: "UTC"}, shanghai,
			map[token.Period]token.BudgetUsage{"day": {Limit: 5, ResetsAt: tomorrowUTC}}},
		{"a stored zone the database lost: the default", token.Token{Budgets: token.Budgets{"day": 5}, BudgetTimezone: "Gone/Zone"}, shanghai,
			map[token.Period]token.BudgetUsage{"day": {Limit: 5, ResetsAt: tomorrowSH}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.tok.BudgetUsage(clock, tt.def); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("BudgetUsage = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSpecTokensCopyBudgets(t *testing.T) {
	s := token.Spec{Name: "n", Count: 2, ExpiredTime: token.NeverExpires,
		Budgets: token.Budgets{"day": 100}, BudgetTimezone: "Asia/Tokyo"}
	toks, err := s.Tokens("u", now)
	if err != nil {
		t.Fatal(err)
	}
	toks[0].Budgets["day"] = 1
	for i, tok := range toks[1:] {
		if !reflect.DeepEqual(tok.Budgets, token.Budgets{"day": 100}) || tok.BudgetTimezone != "Asia/Tokyo" || tok.Windows != nil {
			t.Errorf("token %d: budgets %v zone %q windows %v, want day=100, Asia/Tokyo, none", i+1, tok.Budgets, tok.BudgetTimezone, tok.Windows)
		}
	}
	if s.Budgets["day"] != 100 {
		t.Errorf("the spec's budgets changed with a token's: %v", s.Budgets)
	}
}

// An update that removes a window's state or changes the zone starts a new
// generation of windows; a change of limits does not.
func TestPatchBumpsWindowGen(t *testing.T) {
	tok := token.Token{Budgets: token.Budgets{"minute": 10}, BudgetTimezone: "UTC", WindowGen: 3}
	zone := func(s string) *string { return &s }
	for _, tc := range []struct {
		name string
		p    token.Patch
		want int64
	}{
		{"new limit", token.Patch{Budgets: &token.Budgets{"minute": 20}}, 3},
		{"same zone", token.Patch{BudgetTimezone: zone("UTC")}, 3},
		{"period removed", token.Patch{Budgets: &token.Budgets{"minute": 0}}, 4},
		{"zone changed", token.Patch{BudgetTimezone: zone("Asia/Tokyo")}, 4},
	} {
		if got := tc.p.Apply(tok).WindowGen; got != tc.want {
			t.Errorf("%s: WindowGen %d, want %d", tc.name, got, tc.want)
		}
	}
}
