package storetest

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/llmgw/token-service/internal/token"
)

// WindowWriter writes a token's spend-window state behind the store, as
// verify's charges leave it (what the store's verify path writes is that
// path's test; these cases need the state to exist).
type WindowWriter func(t *testing.T, userID string, id int64, w map[token.Period]token.BudgetWindow)

// budgeted is a valid create input with spend windows in zone.
func budgeted(name string, count int, b token.Budgets, zone string) token.Spec {
	s := spec(name, count)
	s.Budgets, s.BudgetTimezone = b, zone
	return s
}

// windows is the state the update cases start from: a day window that
// counted 300 and a minute window that counted 20.
var windows = map[token.Period]token.BudgetWindow{
	token.PeriodDay:    {Start: now.Unix() - 3600, Used: 300},
	token.PeriodMinute: {Start: now.Unix(), Used: 20},
}

// budgetCases hold the stores to the spend windows' part of the contract:
// what create stores, what every read returns, and the partial-update
// rules (a new limit keeps used, 0 removes a window with its state, a new
// zone clears every window's state).
var budgetCases = []testCase{
	{name: "budgets through create, get, list and search", run: func(t *testing.T, s Stores) {
		ctx := context.Background()
		b := token.Budgets{token.PeriodDay: 100_000, token.PeriodMinute: 5_000}
		in := mustTokens(t, "u", budgeted("windows", 2, b, "Asia/Shanghai"))
		created := mustCreate(t, s.Tokens, "u", in)
		plain := create(t, s, "u", "plain", 1)[0]
		for i, c := range created {
			if !reflect.DeepEqual(c.Budgets, b) || c.BudgetTimezone != "Asia/Shanghai" || c.Windows != nil {
				t.Errorf("created[%d]: budgets %v zone %q windows %v, want %v Asia/Shanghai none", i, c.Budgets, c.BudgetTimezone, c.Windows, b)
			}
			got, err := s.Tokens.Get(ctx, "u", c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, masked(c)) {
				t.Errorf("Get(%d) = %+v, want %+v", c.ID, got, masked(c))
			}
		}
		if plain.Budgets != nil || plain.BudgetTimezone != "" || plain.Windows != nil {
			t.Errorf("a token without budgets: %v %q %v, want nil, \"\", nil", plain.Budgets, plain.BudgetTimezone, plain.Windows)
		}
		page, err := s.Tokens.List(ctx, "u", 1, 10)
		if err != nil {
			t.Fatal(err)
		}
		want := []token.Token{masked(plain), masked(created[1]), masked(created[0])}
		if !reflect.DeepEqual(page.Items, want) {
			t.Errorf("List = %+v, want %+v", page.Items, want)
		}
		found, err := s.Tokens.Search(ctx, "u", token.SearchQuery{Keyword: "windows"}, 10)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(found, want[1:]) {
			t.Errorf("Search = %+v, want %+v", found, want[1:])
		}
	}},

	{name: "budget updates change only the periods named", run: func(t *testing.T, s Stores) {
		if s.Windows == nil {
			t.Fatal("Stores.Windows is required")
		}
		ctx := context.Background()
		tests := []struct {
			name  string
			zone  string // the stored zone
			patch token.Patch
		}{
			{"a new limit keeps used", "Asia/Shanghai", token.Patch{Budgets: &token.Budgets{token.PeriodDay: 200}}},
			{"a new period", "", token.Patch{Budgets: &token.Budgets{token.PeriodWeek: 7_000}}},
			{"0 removes the window and its state", "", token.Patch{Budgets: &token.Budgets{token.PeriodMinute: 0}}},
			{"every window removed", "UTC", token.Patch{Budgets: &token.Budgets{token.PeriodMinute: 0, token.PeriodDay: 0, token.PeriodHour: 0}}},
			{"0 and a new limit at once", "", token.Patch{Budgets: &token.Budgets{token.PeriodMinute: 0, token.PeriodDay: 1}}},
			{"other fields keep the windows", "Asia/Shanghai", token.Patch{Name: ptr("renamed"), RemainQuota: ptr(int64(9))}},
			{"the same zone keeps the state", "Asia/Shanghai", token.Patch{BudgetTimezone: ptr("Asia/Shanghai")}},
			{"the default zone again keeps the state", "", token.Patch{BudgetTimezone: ptr("")}},
			{"a new zone clears the state", "Asia/Shanghai", token.Patch{BudgetTimezone: ptr("America/New_York")}},
			{"a first zone clears the state", "", token.Patch{BudgetTimezone: ptr("Europe/Berlin"), Budgets: &token.Budgets{token.PeriodHour: 3}}},
			{"back to the default zone clears the state", "UTC", token.Patch{BudgetTimezone: ptr(""), Name: ptr("n")}},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				user := fmt.Sprintf("user%d", i)
				tok := mustCreate(t, s.Tokens, user, mustTokens(t, user,
					budgeted("b", 1, token.Budgets{token.PeriodDay: 1_000, token.PeriodMinute: 50}, tt.zone)))[0]
				s.Windows(t, user, tok.ID, windows)
				before, err := s.Tokens.Get(ctx, user, tok.ID)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(before.Windows, windows) {
					t.Fatalf("window state read back %v, want %v", before.Windows, windows)
				}
				got, err := s.Tokens.Update(ctx, user, tok.ID, tt.patch, now)
				if err != nil {
					t.Fatalf("Update: %v", err)
				}
				if want := tt.patch.Apply(before); !reflect.DeepEqual(got, want) {
					t.Errorf("Update returned\n %+v\nwant %+v", got, want)
				}
				if after, err := s.Tokens.Get(ctx, user, tok.ID); err != nil || !reflect.DeepEqual(after, got) {
					t.Errorf("Get after Update = %+v (%v), want what Update returned %+v", after, err, got)
				}
			})
		}
	}},

	{name: "a refused enable changes no budget either", run: func(t *testing.T, s Stores) {
		ctx := context.Background()
		toks := mustTokens(t, "u", budgeted("b", 1, token.Budgets{token.PeriodDay: 10}, "Asia/Tokyo"))
		toks[0].Status, toks[0].RemainQuota = token.StatusDisabled, 0
		tok := masked(mustCreate(t, s.Tokens, "u", toks)[0])
		for _, p := range []token.Patch{
			{Status: ptr(token.StatusEnabled), BudgetTimezone: ptr("Asia/Tokyo"), Budgets: &token.Budgets{token.PeriodDay: 0}},
			{Status: ptr(token.StatusEnabled), BudgetTimezone: ptr("Europe/Paris")},
			{Status: ptr(token.StatusEnabled), BudgetTimezone: ptr("")},
		} {
			_, err := s.Tokens.Update(ctx, "u", tok.ID, p, now)
			wantCode(t, "Update enabling an exhausted token", err, token.ETokenExhausted)
			if after, err := s.Tokens.Get(ctx, "u", tok.ID); err != nil || !reflect.DeepEqual(after, tok) {
				t.Errorf("after a refused update: %+v (%v), want %+v", after, err, tok)
			}
		}
		_, err := s.Tokens.Update(ctx, "nobody", 42, token.Patch{BudgetTimezone: ptr("Europe/Paris")}, now)
		wantCode(t, "Update of a missing id", err, token.ENotFound)
	}},
}
