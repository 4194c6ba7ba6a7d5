package verify_test

import (
	"context"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/verify"
)

// Spend windows at verify (README "Spend windows: budgets that reset"),
// through the verifier over the DynamoDB ledger. Every test takes the
// clock as a parameter: none waits for a real boundary.

func withBudgets(remain int64, zone string, b token.Budgets) token.Spec {
	s := withQuota(remain)
	s.Budgets, s.BudgetTimezone = b, zone
	return s
}

// window reads tok's stored state of period p's window.
func (e env) window(tb testing.TB, tok token.Token, p token.Period) token.BudgetWindow {
	tb.Helper()
	return e.get(tb, tok).Windows[p]
}

func mustZone(tb testing.TB, name string) *time.Location {
	tb.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		tb.Fatal(err)
	}
	return loc
}

// wantBudgetExceeded fails unless a is budget_exceeded by period with
// retry_after_seconds retry (0: absent).
func wantBudgetExceeded(tb testing.TB, what string, a verify.Answer, period token.Period, retry int64) {
	tb.Helper()
	wantCode(tb, what, a, token.VerifyBudgetExceeded)
	if a.Period != period || a.RetryAfterSeconds != retry {
		tb.Errorf("%s: period %q retry_after_seconds %d, want %q, %d", what, a.Period, a.RetryAfterSeconds, period, retry)
	}
}

// A day window of 1000 in Asia/Shanghai: consumes up to 1000 pass, the
// next is refused until 00:00 Shanghai time, and the first consume of the
// next day starts the new window with itself.
func TestDayWindowInShanghai(t *testing.T) {
	e := newEnv(t)
	sh := mustZone(t, "Asia/Shanghai")
	tok := e.create(t, "u1", withBudgets(1_000_000, "Asia/Shanghai", token.Budgets{token.PeriodDay: 1000}))
	day := time.Date(2027, 3, 10, 0, 0, 0, 0, sh)
	at := time.Date(2027, 3, 10, 21, 30, 0, 0, sh)
	for i := range 10 {
		a := e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 100}, at.Add(time.Duration(i)*time.Minute))
		wantCode(t, "consume within the day", a, "")
		if u := a.Token.BudgetUsage[token.PeriodDay]; u.Used != int64(100*(i+1)) || u.Limit != 1000 || u.ResetsAt != day.AddDate(0, 0, 1).Unix() {
			t.Fatalf("consume %d: budget_usage %+v", i+1, u)
		}
	}
	last := time.Date(2027, 3, 10, 23, 59, 59, 0, sh)
	wantBudgetExceeded(t, "the 1001st unit", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 1}, last), token.PeriodDay, 1)
	at = time.Date(2027, 3, 10, 22, 0, 0, 0, sh)
	wantBudgetExceeded(t, "a verify of a full window", e.verify(t, token.VerifyRequest{Key: tok.Key}, at), token.PeriodDay, 2*3600)
	if got := e.window(t, tok, token.PeriodDay); got != (token.BudgetWindow{Start: day.Unix(), Used: 1000}) {
		t.Errorf("stored day window %+v after the refusals, want 1000 used from %d", got, day.Unix())
	}

	next := day.AddDate(0, 0, 1) // 00:00:00 the next day, Shanghai time
	a := e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 300}, next)
	wantCode(t, "the first consume of the next day", a, "")
	if got := e.window(t, tok, token.PeriodDay); got != (token.BudgetWindow{Start: next.Unix(), Used: 300}) {
		t.Errorf("stored day window %+v, want 300 used from %d", got, next.Unix())
	}
	if a.Token.UsedQuota != 1300 || a.Token.RemainQuota != 1_000_000-1300 {
		t.Errorf("quotas after the reset: remain %d used %d", a.Token.RemainQuota, a.Token.UsedQuota)
	}
}

// 200 concurrent consumes of 10 against a minute window of 1000 with
// quota to spare: exactly 100 are charged, the others refused by the
// window.
func TestConcurrentConsumesAgainstAWindow(t *testing.T) {
	e := newEnv(t)
	tok := e.create(t, "u1", withBudgets(1_000_000, "", token.Budgets{token.PeriodMinute: 1000}))
	answers := make([]verify.Answer, 200)
	errs := make([]error, 200)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() {
			answers[i], errs[i] = e.verifier.Verify(context.Background(), token.VerifyRequest{Key: tok.Key, Consume: 10}, now)
		})
	}
	wg.Wait()
	valid := 0
	for i, a := range answers {
		switch {
		case errs[i] != nil:
			t.Fatalf("verify %d: %v", i, errs[i])
		case a.Valid:
			valid++
		case a.Code != token.VerifyBudgetExceeded || a.Period != token.PeriodMinute:
			t.Errorf("verify %d: code %q period %q", i, a.Code, a.Period)
		}
	}
	if valid != 100 {
		t.Errorf("%d consumes charged, want 100", valid)
	}
	e.quotas(t, "after the race", tok, 1_000_000-1000, 1000)
	if got := e.window(t, tok, token.PeriodMinute); got != (token.BudgetWindow{Start: token.MinuteStart(now), Used: 1000}) {
		t.Errorf("stored minute window %+v, want 1000 used", got)
	}
}

// Several windows at once: the one that refuses is named, the longest
// when several do, and a charge counts in every window.
func TestSeveralWindows(t *testing.T) {
	e := newEnv(t)
	b := token.Budgets{token.PeriodMinute: 100, token.PeriodHour: 150, token.PeriodDay: 1000, token.PeriodMonth: 5000}
	tok := e.create(t, "u1", withBudgets(1_000_000, "UTC", b))
	hour := time.Date(2027, 3, 10, 12, 0, 0, 0, time.UTC)
	wantCode(t, "a minute's worth", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 100}, hour.Add(10*time.Second)), "")
	wantBudgetExceeded(t, "the minute is full", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 10}, hour.Add(20*time.Second)), token.PeriodMinute, 40)
	wantCode(t, "the next minute", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 40}, hour.Add(70*time.Second)), "")
	// Minute 40 of 100, hour 140 of 150: 20 fits the minute, not the hour.
	wantBudgetExceeded(t, "the hour refuses", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 20}, hour.Add(80*time.Second)), token.PeriodHour, 3600-80)
	// 70 refuses in the minute (40 + 70) and the hour: the hour is named.
	wantBudgetExceeded(t, "minute and hour refuse", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 70}, hour.Add(80*time.Second)), token.PeriodHour, 3600-80)
	got := e.get(t, tok)
	want := map[token.Period]token.BudgetWindow{
		token.PeriodMinute: {Start: hour.Unix() + 60, Used: 40},
		token.PeriodHour:   {Start: hour.Unix(), Used: 140},
		token.PeriodDay:    {Start: hour.Truncate(24 * time.Hour).Unix(), Used: 140},
		token.PeriodMonth:  {Start: time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC).Unix(), Used: 140},
	}
	if !maps.Equal(got.Windows, want) {
		t.Errorf("stored windows %+v, want %+v", got.Windows, want)
	}
}

// A consume above a window's limit can never fit: budget_exceeded without
// retry_after_seconds. The order of the codes: rate_limited before
// budget_exceeded, budget_exceeded before insufficient_quota.
func TestBudgetExceededPlaceAndNeverFits(t *testing.T) {
	e := newEnv(t)
	tok := e.create(t, "u1", withBudgets(50, "", token.Budgets{token.PeriodDay: 100, token.PeriodWeek: 100_000}))
	wantBudgetExceeded(t, "above the day's limit", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 101}, now), token.PeriodDay, 0)
	wantCode(t, "fits the day, not the quota", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 60}, now), token.VerifyInsufficientQuota)
	e.quotas(t, "after refusals", tok, 50, 0)

	limited := withBudgets(50, "", token.Budgets{token.PeriodDay: 100})
	limited.RPMLimit = 1
	rl := e.create(t, "u1", limited)
	wantCode(t, "uses the minute's request", e.verify(t, token.VerifyRequest{Key: rl.Key}, now), "")
	wantCode(t, "rate limited first", e.verify(t, token.VerifyRequest{Key: rl.Key, Consume: 500}, now), token.VerifyRateLimited)
}

// A settle skips the windows' check and may take used past the limit; the
// next consume, and a plain verify, are refused until the window resets.
// A refund without a request id leaves the windows alone.
func TestSettlePastTheLimit(t *testing.T) {
	e := newEnv(t)
	tok := e.create(t, "u1", withBudgets(1000, "", token.Budgets{token.PeriodDay: 100}))
	day := time.Date(2027, 3, 10, 0, 0, 0, 0, time.UTC)
	at := day.Add(20 * time.Hour)
	wantCode(t, "consume", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 80}, at), "")
	a := e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 50, Settle: true}, at)
	wantCode(t, "settle past the limit", a, "")
	amounts(t, "settle", a, 50, -1, 0)
	if got := e.window(t, tok, token.PeriodDay); got.Used != 130 {
		t.Errorf("day window used %d after the settle, want 130", got.Used)
	}
	wantBudgetExceeded(t, "consume after", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 1}, at), token.PeriodDay, 4*3600)
	wantBudgetExceeded(t, "plain verify after", e.verify(t, token.VerifyRequest{Key: tok.Key}, at), token.PeriodDay, 4*3600)
	wantCode(t, "refund without an id", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: -30}, at), "")
	if got := e.window(t, tok, token.PeriodDay); got.Used != 130 {
		t.Errorf("day window used %d after a refund without an id, want 130", got.Used)
	}
	e.quotas(t, "after the refund", tok, 1000-100, 100)
	wantCode(t, "after the reset", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 100}, day.AddDate(0, 0, 1)), "")
}

// A hold at 12:00:59 settled lower at 12:01:05 gives back to the day
// window, which still counts the hold, and nothing to the new minute
// window; the record remembers only what a give-back may still return.
func TestGiveBackOnlyToCurrentWindows(t *testing.T) {
	e := newEnv(t)
	b := token.Budgets{token.PeriodMinute: 1000, token.PeriodDay: 10_000}
	tok := e.create(t, "u1", withBudgets(100_000, "UTC", b))
	noon := time.Date(2027, 3, 10, 12, 0, 0, 0, time.UTC)
	day := time.Date(2027, 3, 10, 0, 0, 0, 0, time.UTC).Unix()
	wantCode(t, "hold", e.verify(t, hold(tok.Key, "r", 100), noon.Add(59*time.Second)), "")
	wantCode(t, "another consume in the new minute", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 30}, noon.Add(61*time.Second)), "")
	a := e.verify(t, settle(tok.Key, "r", 40), noon.Add(65*time.Second))
	wantCode(t, "settle lower", a, "")
	amounts(t, "settle lower", a, 40, -60, 0)
	want := map[token.Period]token.BudgetWindow{
		token.PeriodMinute: {Start: noon.Unix() + 60, Used: 30},
		token.PeriodDay:    {Start: day, Used: 70},
	}
	if got := e.get(t, tok).Windows; !maps.Equal(got, want) {
		t.Errorf("windows after the settle %+v, want %+v", got, want)
	}
	if u := a.Token.BudgetUsage; u[token.PeriodDay].Used != 70 || u[token.PeriodMinute].Used != 30 {
		t.Errorf("answer's budget_usage %+v, want day 70, minute 30", u)
	}
	var wantRec token.RequestWindows
	wantRec.Set(token.PeriodDay, token.CountedWindow{Start: day, Used: 40})
	if rec := e.record(t, tok, "r"); rec == nil || rec.Windows != wantRec {
		t.Fatalf("record windows %+v, want only the day's 40", rec)
	}

	// A settle higher counts the difference in every window; the refund
	// gives back what each current window counted of the request.
	s := e.verify(t, settle(tok.Key, "s", 50), noon.Add(70*time.Second))
	wantCode(t, "settle without a hold", s, "")
	wantCode(t, "refund r", e.verify(t, refund(tok.Key, "r", 40), noon.Add(75*time.Second)), "")
	wantCode(t, "refund s in the next minute", e.verify(t, refund(tok.Key, "s", 50), noon.Add(125*time.Second)), "")
	want = map[token.Period]token.BudgetWindow{
		token.PeriodMinute: {Start: noon.Unix() + 60, Used: 80}, // s's minute ended: it keeps s's 50
		token.PeriodDay:    {Start: day, Used: 30},
	}
	if got := e.get(t, tok).Windows; !maps.Equal(got, want) {
		t.Errorf("windows after the refunds %+v, want %+v", got, want)
	}
	e.quotas(t, "after the refunds", tok, 100_000-30, 30)
}

// A window opened by a container whose clock runs ahead counts as current:
// a charge on a slower clock is counted in it, never moving it back.
func TestWindowAheadIsNeverMovedBack(t *testing.T) {
	e := newEnv(t)
	tok := e.create(t, "u1", withBudgets(100_000, "", token.Budgets{token.PeriodMinute: 100}))
	ahead := now.Add(time.Minute)
	wantCode(t, "a clock ahead", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 60}, ahead), "")
	wantBudgetExceeded(t, "a slower clock", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 50}, now), token.PeriodMinute, 115)
	wantCode(t, "a slower clock, fits", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 40}, now), "")
	if got := e.window(t, tok, token.PeriodMinute); got != (token.BudgetWindow{Start: token.MinuteStart(ahead), Used: 100}) {
		t.Errorf("stored minute window %+v, want the later one with 100", got)
	}
}

// A change of the budgets between verify's read and its write makes the
// write's condition fail: the verify decides again on the new limit.
func TestLimitLoweredMeanwhile(t *testing.T) {
	e := newEnv(t)
	tok := e.create(t, "u1", withBudgets(100_000, "", token.Budgets{token.PeriodDay: 100}))
	wantCode(t, "consume", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 50}, now), "")
	ctx := context.Background()
	read, err := e.ledger.ReadForVerify(ctx, tok.UserID, tok.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	lower := token.Budgets{token.PeriodDay: 60}
	if _, err := e.tokens.Update(ctx, tok.UserID, tok.ID, token.Patch{Budgets: &lower}, now); err != nil {
		t.Fatal(err)
	}
	w := token.Write{Consume: 40, Windows: token.ChargeWindows(read.Token, 40, true, now, time.UTC)}
	next, written, err := e.ledger.Write(ctx, read, w, now)
	if err != nil || written {
		t.Fatalf("write decided on the old limit: written %v, %v; want its condition to fail", written, err)
	}
	if next.Token.Budgets[token.PeriodDay] != 60 {
		t.Errorf("state returned %+v, want the new limit", next.Token.Budgets)
	}
	wantBudgetExceeded(t, "on the new limit", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 40}, now), token.PeriodDay, token.WindowAt(token.PeriodDay, now, time.UTC).End-now.Unix())
	e.quotas(t, "nothing charged", tok, 100_000-50, 50)
}

// The deployment's default zone applies to tokens without a zone of their
// own.
func TestDefaultZone(t *testing.T) {
	e := newEnv(t)
	ny := mustZone(t, "America/New_York")
	v := verify.New(e.ledger, 0).BudgetZone(ny)
	tok := e.create(t, "u1", withBudgets(100_000, "", token.Budgets{token.PeriodDay: 100}))
	at := time.Date(2027, 3, 10, 23, 0, 0, 0, ny)
	a, err := v.Verify(context.Background(), token.VerifyRequest{Key: tok.Key, Consume: 100}, at)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := a.Token.BudgetUsage[token.PeriodDay].ResetsAt, time.Date(2027, 3, 11, 0, 0, 0, 0, ny).Unix(); got != want {
		t.Errorf("resets_at %d, want New York's midnight %d", got, want)
	}
	a, err = v.Verify(context.Background(), token.VerifyRequest{Key: tok.Key, Consume: 1}, at.Add(30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	wantBudgetExceeded(t, "before New York's midnight", a, token.PeriodDay, 1800)
}

// With three windows set, verify + consume is still 1 read + 1 write, also
// when the charge opens the windows, and with a request id.
func TestRequestsWithWindows(t *testing.T) {
	e := newEnv(t)
	b := token.Budgets{token.PeriodMinute: 1000, token.PeriodDay: 10_000, token.PeriodMonth: 100_000}
	tok := e.create(t, "u1", withBudgets(1_000_000, "Asia/Shanghai", b))
	e.verify(t, token.VerifyRequest{Key: tok.Key}, now) // caches the mapping
	read := map[string]int{"BatchGetItem": 1}
	update := map[string]int{"BatchGetItem": 1, "UpdateItem": 1}
	transact := map[string]int{"BatchGetItem": 1, "TransactWriteItems": 1}
	tests := []struct {
		name string
		req  token.VerifyRequest
		at   time.Time
		want map[string]int
	}{
		{"consume opening the windows", token.VerifyRequest{Key: tok.Key, Consume: 5}, now, update},
		{"consume", token.VerifyRequest{Key: tok.Key, Consume: 5}, now, update},
		{"consume opening a new minute", token.VerifyRequest{Key: tok.Key, Consume: 5}, now.Add(time.Minute), update},
		{"hold", hold(tok.Key, "a", 5), now.Add(time.Minute), transact},
		{"settle lower", settle(tok.Key, "a", 2), now.Add(time.Minute), transact},
		{"settle", token.VerifyRequest{Key: tok.Key, Consume: 5, Settle: true}, now.Add(time.Minute), update},
		{"refused", token.VerifyRequest{Key: tok.Key, Consume: 1001}, now.Add(time.Minute), read},
	}
	for _, tt := range tests {
		e.counter.Reset()
		if _, err := e.verifier.Verify(context.Background(), tt.req, tt.at); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := e.counter.Counts(); !maps.Equal(got, tt.want) {
			t.Errorf("%s: requests %v, want %v", tt.name, got, tt.want)
		}
	}
}

// The zone's calendar at verify: a day across America/New_York's
// daylight-saving changes lasts 23 or 25 hours, a week turns over on
// Monday 00:00, a month on the 1st's 00:00 (January 31 to February 1).
func TestWindowsFollowTheZonesCalendar(t *testing.T) {
	e := newEnv(t)
	ny := mustZone(t, "America/New_York")
	tok := e.create(t, "u1", withBudgets(1_000_000, "America/New_York", token.Budgets{token.PeriodDay: 100, token.PeriodWeek: 250}))
	consume := func(n int64, at time.Time) verify.Answer {
		t.Helper()
		return e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: n}, at)
	}
	wantCode(t, "Saturday", consume(100, time.Date(2027, 3, 13, 23, 0, 0, 0, ny)), "")
	wantCode(t, "Sunday 00:00", consume(100, time.Date(2027, 3, 14, 0, 0, 0, 0, ny)), "")
	// 01:30 EST on the 23-hour day: 21.5 hours to Monday 00:00 EDT.
	wantBudgetExceeded(t, "the short day", consume(1, time.Date(2027, 3, 14, 1, 30, 0, 0, ny)), token.PeriodDay, 77_400)
	monday := time.Date(2027, 3, 15, 0, 0, 0, 0, ny)
	wantBudgetExceeded(t, "the week, a second before Monday", consume(51, monday.Add(-time.Second)), token.PeriodWeek, 1)
	wantCode(t, "Monday 00:00", consume(100, monday), "")
	if got := e.window(t, tok, token.PeriodWeek); got != (token.BudgetWindow{Start: monday.Unix(), Used: 100}) {
		t.Errorf("week window %+v, want 100 from Monday %d", got, monday.Unix())
	}
	// 00:30 EDT on the 25-hour day: 24.5 hours to the next day's 00:00 EST.
	fall := time.Date(2027, 11, 7, 0, 30, 0, 0, ny)
	wantCode(t, "the long day", consume(100, fall), "")
	wantBudgetExceeded(t, "the long day, full", consume(1, fall), token.PeriodDay, 88_200)

	sh := mustZone(t, "Asia/Shanghai")
	monthly := e.create(t, "u1", withBudgets(1_000_000, "Asia/Shanghai", token.Budgets{token.PeriodMonth: 100}))
	feb := time.Date(2027, 2, 1, 0, 0, 0, 0, sh)
	wantCode(t, "January 31", e.verify(t, token.VerifyRequest{Key: monthly.Key, Consume: 100}, feb.Add(-time.Hour)), "")
	wantBudgetExceeded(t, "January's last second", e.verify(t, token.VerifyRequest{Key: monthly.Key}, feb.Add(-time.Second)), token.PeriodMonth, 1)
	wantCode(t, "February 1 00:00", e.verify(t, token.VerifyRequest{Key: monthly.Key, Consume: 100}, feb), "")
}

// A window started afresh at the start of the one a hold counted in (its
// period removed and set again, or the zone changed, inside one minute)
// never gets back what the hold counted in the old one.
func TestGiveBackSkipsAWindowStartedAfresh(t *testing.T) {
	ctx := context.Background()
	noon := time.Date(2027, 3, 10, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		changes []token.Patch
	}{
		{"period removed and set again", []token.Patch{
			{Budgets: &token.Budgets{token.PeriodMinute: 0}},
			{Budgets: &token.Budgets{token.PeriodMinute: 1000}},
		}},
		{"zone changed", []token.Patch{{BudgetTimezone: ptr("Asia/Tokyo")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tok := e.create(t, "u1", withBudgets(100_000, "UTC", token.Budgets{token.PeriodMinute: 1000}))
			wantCode(t, "hold", e.verify(t, hold(tok.Key, "r", 300), noon.Add(5*time.Second)), "")
			for _, p := range tc.changes {
				if _, err := e.tokens.Update(ctx, tok.UserID, tok.ID, p, noon.Add(10*time.Second)); err != nil {
					t.Fatalf("update: %v", err)
				}
			}
			wantCode(t, "consume in the new window", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 500}, noon.Add(15*time.Second)), "")
			a := e.verify(t, settle(tok.Key, "r", 120), noon.Add(20*time.Second))
			wantCode(t, "settle lower", a, "")
			amounts(t, "settle lower", a, 120, -180, 0)
			if got := e.window(t, tok, token.PeriodMinute); got.Start != noon.Unix() || got.Used != 500 {
				t.Errorf("minute window %+v, want start %d, used 500 (nothing of r's)", got, noon.Unix())
			}
			e.quotas(t, "after the settle", tok, 100_000-620, 620)
		})
	}
}

func ptr[T any](v T) *T { return &v }
