package token_test

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/llmgw/token-service/internal/token"
)

// atNoon is 2027-03-10 12:00:30 UTC; noonMinute, noonHour and noonDay are
// the starts of its windows.
var (
	atNoon     = time.Date(2027, 3, 10, 12, 0, 30, 0, time.UTC)
	noonMinute = time.Date(2027, 3, 10, 12, 0, 0, 0, time.UTC).Unix()
	noonHour   = noonMinute
	noonDay    = time.Date(2027, 3, 10, 0, 0, 0, 0, time.UTC).Unix()
)

func TestBudgetRefusal(t *testing.T) {
	b := token.Budgets{token.PeriodMinute: 100, token.PeriodHour: 150, token.PeriodDay: 1000}
	with := func(w map[token.Period]token.BudgetWindow) token.Token {
		return token.Token{Budgets: b, Windows: w}
	}
	tests := []struct {
		name    string
		tok     token.Token
		consume int64
		period  token.Period // "": not refused
		retry   int64
	}{
		{"no budgets", token.Token{}, 1 << 40, "", 0},
		{"empty windows", with(nil), 100, "", 0},
		{"fits exactly", with(map[token.Period]token.BudgetWindow{token.PeriodMinute: {noonMinute, 60}}), 40, "", 0},
		{"minute full", with(map[token.Period]token.BudgetWindow{token.PeriodMinute: {noonMinute, 60}}), 41, token.PeriodMinute, 30},
		{"an ended minute counts nothing", with(map[token.Period]token.BudgetWindow{token.PeriodMinute: {noonMinute - 60, 100}}), 100, "", 0},
		{"a minute ahead counts", with(map[token.Period]token.BudgetWindow{token.PeriodMinute: {noonMinute + 60, 100}}), 1, token.PeriodMinute, 90},
		{"several: the longest", with(map[token.Period]token.BudgetWindow{token.PeriodMinute: {noonMinute, 100}, token.PeriodHour: {noonHour, 150}}), 1, token.PeriodHour, 3570},
		{"above a limit: never fits", with(nil), 101, token.PeriodMinute, 0},
		{"above the day's limit", with(nil), 1001, token.PeriodDay, 0},
		{"verify of a full window", with(map[token.Period]token.BudgetWindow{token.PeriodDay: {noonDay, 1000}}), 0, token.PeriodDay, 12*3600 - 30},
		{"verify of a window past its limit", with(map[token.Period]token.BudgetWindow{token.PeriodDay: {noonDay, 1200}}), 0, token.PeriodDay, 12*3600 - 30},
		{"verify of a window with room", with(map[token.Period]token.BudgetWindow{token.PeriodDay: {noonDay, 999}}), 0, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, retry, refused := token.BudgetRefusal(tt.tok, tt.consume, atNoon, time.UTC)
			if refused != (tt.period != "") || p != tt.period || retry != tt.retry {
				t.Errorf("got %q, %d, %v; want %q, %d", p, retry, refused, tt.period, tt.retry)
			}
		})
	}
}

func TestBudgetRefusalInTheTokensZone(t *testing.T) {
	// 23:30 UTC is 07:30 the next day in Shanghai: that day is empty.
	at := time.Date(2027, 3, 10, 23, 30, 0, 0, time.UTC)
	tok := token.Token{Budgets: token.Budgets{token.PeriodDay: 10}, Windows: map[token.Period]token.BudgetWindow{token.PeriodDay: {noonDay, 10}}}
	if _, _, refused := token.BudgetRefusal(tok, 5, at, time.UTC); !refused {
		t.Errorf("UTC day full: not refused")
	}
	tok.BudgetTimezone = "Asia/Shanghai"
	if p, _, refused := token.BudgetRefusal(tok, 5, at, time.UTC); refused {
		t.Errorf("a new Shanghai day: refused by %q", p)
	}
}

func TestChargeWindows(t *testing.T) {
	tok := token.Token{
		Budgets: token.Budgets{token.PeriodMinute: 100, token.PeriodDay: 1000},
		Windows: map[token.Period]token.BudgetWindow{token.PeriodMinute: {noonMinute - 60, 80}, token.PeriodDay: {noonDay, 500}},
	}
	got := token.ChargeWindows(tok, 30, true, atNoon, time.UTC)
	want := []token.WindowPart{
		{Period: token.PeriodMinute, Start: noonMinute, Open: true, Add: 30, Limit: 100, Checked: true},
		{Period: token.PeriodDay, Start: noonDay, Add: 30, Limit: 1000, Checked: true},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if got := token.ChargeWindows(token.Token{}, 30, false, atNoon, time.UTC); got != nil {
		t.Errorf("no budgets: %+v", got)
	}
	// A window a clock ahead opened is counted in, not moved back.
	tok.Windows[token.PeriodMinute] = token.BudgetWindow{Start: noonMinute + 60, Used: 10}
	if got := token.ChargeWindows(tok, 5, false, atNoon, time.UTC)[0]; got.Start != noonMinute+60 || got.Open {
		t.Errorf("a window ahead: %+v", got)
	}
}

func TestGiveBackWindows(t *testing.T) {
	tok := token.Token{
		Budgets: token.Budgets{token.PeriodMinute: 100, token.PeriodHour: 1000, token.PeriodDay: 1000},
		Windows: map[token.Period]token.BudgetWindow{token.PeriodMinute: {noonMinute, 30}, token.PeriodHour: {noonHour, 20}, token.PeriodDay: {noonDay, 500}},
	}
	var counted token.RequestWindows
	counted.Set(token.PeriodMinute, token.CountedWindow{Start: noonMinute - 60, Used: 100}) // an ended minute
	counted.Set(token.PeriodHour, token.CountedWindow{Start: noonHour, Used: 100})          // more than the hour holds now
	counted.Set(token.PeriodDay, token.CountedWindow{Start: noonDay, Used: 40})
	got := token.GiveBackWindows(tok, counted, 60, atNoon, time.UTC)
	want := []token.WindowPart{
		{Period: token.PeriodHour, Start: noonHour, Add: -20, Limit: 1000},
		{Period: token.PeriodDay, Start: noonDay, Add: -40, Limit: 1000},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestRequestWindowsAfter(t *testing.T) {
	tok := token.Token{Budgets: token.Budgets{token.PeriodMinute: 100, token.PeriodDay: 1000}}
	var c token.RequestWindows
	c.Set(token.PeriodMinute, token.CountedWindow{Start: noonMinute - 60, Used: 50})
	c.Set(token.PeriodDay, token.CountedWindow{Start: noonDay, Used: 50})
	c.Set(token.PeriodWeek, token.CountedWindow{Start: noonDay, Used: 50}) // no budget any more
	got := c.After([]token.WindowPart{
		{Period: token.PeriodMinute, Start: noonMinute, Open: true, Add: 30},
		{Period: token.PeriodDay, Start: noonDay, Add: 30},
	}, tok, atNoon, time.UTC)
	var want token.RequestWindows
	want.Set(token.PeriodMinute, token.CountedWindow{Start: noonMinute, Used: 30})
	want.Set(token.PeriodDay, token.CountedWindow{Start: noonDay, Used: 80})
	if got != want {
		t.Errorf("after a charge %+v, want %+v", got, want)
	}
	got = got.After([]token.WindowPart{{Period: token.PeriodDay, Start: noonDay, Add: -80}}, tok, atNoon.Add(time.Minute), time.UTC)
	if got != (token.RequestWindows{}) {
		t.Errorf("after all was given back, a minute later: %+v, want nothing", got)
	}
}

func TestWriteAppliedWindows(t *testing.T) {
	stored := map[token.Period]token.BudgetWindow{token.PeriodMinute: {noonMinute - 60, 80}, token.PeriodDay: {noonDay, 500}}
	read := token.VerifyState{Token: token.Token{RemainQuota: 1000, Windows: stored}}
	w := token.Write{Consume: 30, Windows: []token.WindowPart{
		{Period: token.PeriodMinute, Start: noonMinute, Open: true, Add: 30},
		{Period: token.PeriodDay, Start: noonDay, Add: 30},
	}}
	got := w.Applied(read, atNoon).Token.Windows
	want := map[token.Period]token.BudgetWindow{token.PeriodMinute: {noonMinute, 30}, token.PeriodDay: {noonDay, 530}}
	if !maps.Equal(got, want) {
		t.Errorf("windows %+v, want %+v", got, want)
	}
	if stored[token.PeriodDay].Used != 500 {
		t.Errorf("the read state changed: %+v", stored)
	}
}
