package verify_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/ddbcount"
	"github.com/llmgw/token-service/internal/dynamotest"
	"github.com/llmgw/token-service/internal/message"
	"github.com/llmgw/token-service/internal/seal"
	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/token/dynamo"
	"github.com/llmgw/token-service/internal/verify"
)

// now is 5 s into a clock minute, so a test moving it by less than 55 s
// stays in that minute.
var now = time.Unix(1_800_000_005, 0)

// env is a verifier over the DynamoDB ledger on a fresh table, its
// requests counted, and the other parts of the store the tests set tokens
// up with.
type env struct {
	tokens   *dynamo.Tokens
	keys     *dynamo.Keys
	ledger   *dynamo.Ledger
	access   *dynamo.AccessTokens
	verifier *verify.Verifier
	counter  *ddbcount.Counter
	db       *dynamodb.Client // the table's client, for writes no store method makes
	table    string
}

func newEnv(tb testing.TB) env {
	tb.Helper()
	client, table := dynamotest.NewTable(tb)
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		tb.Fatal(err)
	}
	sealer, err := seal.NewAESGCM(key)
	if err != nil {
		tb.Fatal(err)
	}
	counter := &ddbcount.Counter{}
	core, err := dynamo.NewCore(dynamodb.New(client.Options(), counter.Option), table)
	if err != nil {
		tb.Fatal(err)
	}
	tokens, err := dynamo.NewTokens(core, sealer, 0)
	if err != nil {
		tb.Fatal(err)
	}
	keys, err := dynamo.NewKeys(core, sealer)
	if err != nil {
		tb.Fatal(err)
	}
	ledger := dynamo.NewLedger(core)
	return env{
		tokens: tokens, keys: keys, ledger: ledger, access: dynamo.NewAccessTokens(core),
		verifier: verify.New(ledger, 0), counter: counter, db: client, table: table,
	}
}

// spec is a usable token: 1000 quota, never expires, any IP, any model.
func spec() token.Spec {
	return token.Spec{Name: "t", Count: 1, ExpiredTime: token.NeverExpires, RemainQuota: 1000}
}

// create stores one token of s for user and returns it with its key.
func (e env) create(tb testing.TB, user string, s token.Spec) token.Token {
	tb.Helper()
	toks, err := s.Tokens(user, now)
	if err != nil {
		tb.Fatal(err)
	}
	got, err := e.tokens.Create(context.Background(), user, toks)
	if err != nil {
		tb.Fatalf("create: %v", err)
	}
	return got[0]
}

func (e env) verify(tb testing.TB, req token.VerifyRequest, at time.Time) verify.Answer {
	tb.Helper()
	a, err := e.verifier.Verify(context.Background(), req, at)
	if err != nil {
		tb.Fatalf("Verify: %v", err)
	}
	return a
}

func (e env) get(tb testing.TB, tok token.Token) token.Token {
	tb.Helper()
	got, err := e.tokens.Get(context.Background(), tok.UserID, tok.ID)
	if err != nil {
		tb.Fatalf("get: %v", err)
	}
	return got
}

func wantCode(tb testing.TB, what string, a verify.Answer, code string) {
	tb.Helper()
	if code == "" {
		if !a.Valid || a.Code != "" || a.Token == nil {
			tb.Fatalf("%s: answer %+v, want valid", what, a)
		}
		return
	}
	if a.Valid || a.Code != code || a.Token != nil {
		tb.Fatalf("%s: answer %+v, want refused %q", what, a, code)
	}
	if want := message.Text(code, message.ZH); a.Message != want || want == message.Text(token.EInternal, message.ZH) {
		tb.Fatalf("%s: message %q, want the catalog's %q", what, a.Message, want)
	}
}

func TestEveryCode(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	with := func(f func(*token.Spec)) token.Spec { s := spec(); f(&s); return s }

	deleted := e.create(t, "u-del", spec())
	e.verify(t, token.VerifyRequest{Key: deleted.Key}, now) // cache the mapping first
	if err := e.tokens.Delete(ctx, "u-del", deleted.ID); err != nil {
		t.Fatal(err)
	}
	disabledUser := e.create(t, "u-off", spec())
	if err := e.access.SetUserDisabled(ctx, "u-off", true); err != nil {
		t.Fatal(err)
	}
	disabled := e.create(t, "u1", spec())
	off := token.StatusDisabled
	if _, err := e.tokens.Update(ctx, "u1", disabled.ID, token.Patch{Status: &off}, now); err != nil {
		t.Fatal(err)
	}
	expiring := e.create(t, "u1", with(func(s *token.Spec) { s.ExpiredTime = now.Unix() + 10 }))
	exhausted := e.create(t, "u1", with(func(s *token.Spec) { s.RemainQuota = 0 }))
	ipLimited := e.create(t, "u1", with(func(s *token.Spec) { s.AllowIPs = []string{"10.0.0.0/8"} }))
	modelLimited := e.create(t, "u1", with(func(s *token.Spec) { s.ModelLimitsEnabled = true; s.ModelLimits = []string{"gpt-4"} }))
	limited := e.create(t, "u1", with(func(s *token.Spec) { s.RPMLimit = 1 }))
	e.verify(t, token.VerifyRequest{Key: limited.Key}, now) // uses the minute's one request
	usable := e.create(t, "u1", spec())
	other, _ := token.NewKey()

	tests := []struct {
		name string
		req  token.VerifyRequest
		at   time.Time
		want string
	}{
		{"valid", token.VerifyRequest{Key: usable.Key, Model: "any", ClientIP: "1.2.3.4"}, now, ""},
		{"valid without sk-", token.VerifyRequest{Key: usable.Key[3:]}, now, ""},
		{"consume too large", token.VerifyRequest{Key: usable.Key, Consume: token.MaxQuota + 1}, now, token.VerifyInvalidRequest},
		{"bad checksum", token.VerifyRequest{Key: badChecksum(usable.Key)}, now, token.VerifyNotFound},
		{"channel suffix", token.VerifyRequest{Key: usable.Key + "-3"}, now, token.VerifyNotFound},
		{"unknown key", token.VerifyRequest{Key: other}, now, token.VerifyNotFound},
		{"deleted key", token.VerifyRequest{Key: deleted.Key}, now, token.VerifyNotFound},
		{"token disabled", token.VerifyRequest{Key: disabled.Key}, now, token.VerifyDisabled},
		{"user disabled", token.VerifyRequest{Key: disabledUser.Key}, now, token.VerifyDisabled},
		{"expired", token.VerifyRequest{Key: expiring.Key}, now.Add(10 * time.Second), token.VerifyExpired},
		{"not yet expired", token.VerifyRequest{Key: expiring.Key}, now.Add(9 * time.Second), ""},
		{"exhausted", token.VerifyRequest{Key: exhausted.Key}, now, token.VerifyExhausted},
		{"ip outside", token.VerifyRequest{Key: ipLimited.Key, ClientIP: "11.0.0.1"}, now, token.VerifyIPNotAllowed},
		{"ip empty", token.VerifyRequest{Key: ipLimited.Key}, now, token.VerifyIPNotAllowed},
		{"ip inside", token.VerifyRequest{Key: ipLimited.Key, ClientIP: "10.9.9.9"}, now, ""},
		{"model not listed", token.VerifyRequest{Key: modelLimited.Key, Model: "gpt-4o"}, now, token.VerifyModelNotAllowed},
		{"model empty", token.VerifyRequest{Key: modelLimited.Key}, now, token.VerifyModelNotAllowed},
		{"model listed", token.VerifyRequest{Key: modelLimited.Key, Model: "gpt-4"}, now, ""},
		{"rate limited", token.VerifyRequest{Key: limited.Key}, now, token.VerifyRateLimited},
		{"insufficient quota", token.VerifyRequest{Key: usable.Key, Consume: 1001}, now, token.VerifyInsufficientQuota},
		{"quota fits exactly", token.VerifyRequest{Key: usable.Key, Consume: 1000}, now, ""},
		{"refund larger than used", token.VerifyRequest{Key: exhausted.Key, Consume: -1}, now, token.VerifyInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.verify(t, tt.req, tt.at)
			wantCode(t, tt.name, a, tt.want)
			if tt.want == token.VerifyRateLimited && a.RetryAfterSeconds != 55 {
				t.Errorf("retry_after_seconds = %d, want 55", a.RetryAfterSeconds)
			}
		})
	}
}

func TestMalformedKeyMakesNoRequest(t *testing.T) {
	e := newEnv(t)
	good, _ := token.NewKey()
	typo := good[:len(good)-1] + "0"
	if typo == good {
		typo = good[:len(good)-1] + "1"
	}
	for _, key := range []string{"", "sk-", "sk-short", good + "x", typo, good + "-1", "sk-" + good, "sk-" + good[3:45] + "!!!!!!"} {
		e.counter.Reset()
		wantCode(t, key, e.verify(t, token.VerifyRequest{Key: key}, now), token.VerifyNotFound)
		if n := e.counter.Total(); n != 0 {
			t.Errorf("key of %d chars: %d requests, want 0", len(key), n)
		}
	}
}

func TestRequestsPerVerify(t *testing.T) {
	e := newEnv(t)
	tok := e.create(t, "u1", spec())
	limited := e.create(t, "u1", func() token.Spec { s := spec(); s.RPMLimit = 100; return s }())
	windowed := e.create(t, "u1", withBudgets(1000, "Asia/Shanghai",
		token.Budgets{token.PeriodMinute: 100, token.PeriodDay: 500, token.PeriodMonth: 900}))
	at := now
	tests := []struct {
		name string
		req  token.VerifyRequest
		want map[string]int
	}{
		{"first use", token.VerifyRequest{Key: tok.Key}, map[string]int{"GetItem": 1, "BatchGetItem": 1, "UpdateItem": 1}},
		{"warm", token.VerifyRequest{Key: tok.Key}, map[string]int{"BatchGetItem": 1}},
		{"warm with consume", token.VerifyRequest{Key: tok.Key, Consume: 5}, map[string]int{"BatchGetItem": 1, "UpdateItem": 1}},
		{"warm settle", token.VerifyRequest{Key: tok.Key, Consume: 5, Settle: true}, map[string]int{"BatchGetItem": 1, "UpdateItem": 1}},
		{"warm refund", token.VerifyRequest{Key: tok.Key, Consume: -5}, map[string]int{"BatchGetItem": 1, "UpdateItem": 1}},
		{"rpm first use", token.VerifyRequest{Key: limited.Key}, map[string]int{"GetItem": 1, "BatchGetItem": 1, "UpdateItem": 1}},
		{"rpm warm", token.VerifyRequest{Key: limited.Key}, map[string]int{"BatchGetItem": 1, "UpdateItem": 1}},
		{"rpm warm with consume", token.VerifyRequest{Key: limited.Key, Consume: 5}, map[string]int{"BatchGetItem": 1, "UpdateItem": 1}},
		{"3 windows first use", token.VerifyRequest{Key: windowed.Key}, map[string]int{"GetItem": 1, "BatchGetItem": 1, "UpdateItem": 1}},
		{"3 windows warm with consume", token.VerifyRequest{Key: windowed.Key, Consume: 5}, map[string]int{"BatchGetItem": 1, "UpdateItem": 1}},
		{"3 windows warm hold", hold(windowed.Key, "h", 5), map[string]int{"BatchGetItem": 1, "TransactWriteItems": 1}},
	}
	for _, tt := range tests {
		e.counter.Reset()
		wantCode(t, tt.name, e.verify(t, tt.req, at), "")
		if got := e.counter.Counts(); !maps.Equal(got, tt.want) {
			t.Errorf("%s: requests %v, want %v", tt.name, got, tt.want)
		}
		at = at.Add(time.Second)
	}
	// The next minute's first plain verify touches accessed_time once.
	e.counter.Reset()
	e.verify(t, token.VerifyRequest{Key: tok.Key}, now.Add(time.Minute))
	e.verify(t, token.VerifyRequest{Key: tok.Key}, now.Add(time.Minute+time.Second))
	if got, want := e.counter.Counts(), map[string]int{"BatchGetItem": 2, "UpdateItem": 1}; !maps.Equal(got, want) {
		t.Errorf("two verifies in a new minute: requests %v, want %v", got, want)
	}
	if got := e.get(t, tok).AccessedTime; got != now.Add(time.Minute).Unix() {
		t.Errorf("accessed_time = %d, want %d", got, now.Add(time.Minute).Unix())
	}
}

func TestConcurrentConsumeIsExact(t *testing.T) {
	e := newEnv(t)
	tok := e.create(t, "u1", spec()) // 1000
	var wg sync.WaitGroup
	answers := make([]verify.Answer, 200)
	errs := make([]error, 200)
	for i := range answers {
		wg.Go(func() {
			answers[i], errs[i] = e.verifier.Verify(context.Background(), token.VerifyRequest{Key: tok.Key, Consume: 10}, now)
		})
	}
	wg.Wait()
	valid := 0
	for i, a := range answers {
		if errs[i] != nil {
			t.Fatalf("verify %d: %v", i, errs[i])
		}
		switch {
		case a.Valid:
			valid++
		case a.Code != token.VerifyInsufficientQuota && a.Code != token.VerifyExhausted:
			t.Errorf("verify %d: code %q", i, a.Code)
		}
	}
	got := e.get(t, tok)
	if valid != 100 || got.RemainQuota != 0 || got.UsedQuota != 1000 || got.EffectiveStatus(now) != token.StatusExhausted {
		t.Errorf("valid %d, remain %d, used %d, status %d; want 100, 0, 1000, 4",
			valid, got.RemainQuota, got.UsedQuota, got.EffectiveStatus(now))
	}
}

func TestDisableAndDeleteStopTheNextVerify(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tok := e.create(t, "u1", spec())
	off, on := token.StatusDisabled, token.StatusEnabled

	// Verifiers keep running while the user disables the token.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := e.verifier.Verify(ctx, token.VerifyRequest{Key: tok.Key, Consume: 1}, now); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	if _, err := e.tokens.Update(ctx, "u1", tok.ID, token.Patch{Status: &off}, now); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		wantCode(t, "after disable", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 1}, now), token.VerifyDisabled)
		wantCode(t, "after disable", e.verify(t, token.VerifyRequest{Key: tok.Key}, now), token.VerifyDisabled)
		_ = i
	}
	close(stop)
	wg.Wait()
	used := e.get(t, tok).UsedQuota
	wantCode(t, "after disable", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 1}, now), token.VerifyDisabled)
	if got := e.get(t, tok).UsedQuota; got != used {
		t.Errorf("used_quota moved after the disable: %d -> %d", used, got)
	}

	if _, err := e.tokens.Update(ctx, "u1", tok.ID, token.Patch{Status: &on}, now); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "enabled again", e.verify(t, token.VerifyRequest{Key: tok.Key}, now), "")
	if err := e.tokens.Delete(ctx, "u1", tok.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "after delete, cached mapping", e.verify(t, token.VerifyRequest{Key: tok.Key}, now), token.VerifyNotFound)
	wantCode(t, "after delete, settle", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 5, Settle: true}, now), token.VerifyNotFound)
}

func TestRPMLimit(t *testing.T) {
	for _, concurrent := range []bool{false, true} {
		name := map[bool]string{false: "sequential", true: "concurrent"}[concurrent]
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			s := spec()
			s.RPMLimit = 5
			tok := e.create(t, "u1", s)
			answers := make([]verify.Answer, 20)
			var wg sync.WaitGroup
			for i := range answers {
				run := func() {
					answers[i] = e.verify(t, token.VerifyRequest{Key: tok.Key}, now.Add(time.Duration(i%50)*time.Second))
				}
				if concurrent {
					wg.Go(run)
				} else {
					run()
				}
			}
			wg.Wait()
			valid := 0
			for i, a := range answers {
				if a.Valid {
					valid++
					continue
				}
				wantCode(t, "over the limit", a, token.VerifyRateLimited)
				if want := int64(55 - i%50); a.RetryAfterSeconds != want {
					t.Errorf("verify %d: retry_after_seconds %d, want %d", i, a.RetryAfterSeconds, want)
				}
			}
			if valid != 5 {
				t.Errorf("%d valid verifies in one minute, want 5", valid)
			}
			// Settles and refunds do not count and are not limited.
			wantCode(t, "settle", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 10, Settle: true}, now), "")
			wantCode(t, "refund", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: -10}, now), "")
			next := now.Add(time.Minute)
			for i := range 5 {
				wantCode(t, "next minute", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 1}, next.Add(time.Duration(i)*time.Second)), "")
			}
			wantCode(t, "next minute, 6th", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 1}, next), token.VerifyRateLimited)
			if got := e.get(t, tok).UsedQuota; got != 5 {
				t.Errorf("used_quota %d, want 5 (a rate-limited consume charges nothing)", got)
			}
		})
	}
}

func TestSettleAndRefund(t *testing.T) {
	e := newEnv(t)
	s := spec()
	s.RemainQuota = 100
	tok := e.create(t, "u1", s)

	a := e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 300, Settle: true}, now)
	wantCode(t, "settle", a, "")
	if a.Charged == nil || a.Shortfall == nil || *a.Charged != 100 || *a.Shortfall != 200 {
		t.Fatalf("settle: charged %v shortfall %v, want 100, 200", a.Charged, a.Shortfall)
	}
	if a.Token.RemainQuota != 0 || a.Token.UsedQuota != 100 || a.Token.Status != token.StatusExhausted {
		t.Errorf("settle: token %+v, want remain 0, used 100, status 4", *a.Token)
	}
	// Settling an exhausted token is still answered, charging nothing.
	a = e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 7, Settle: true}, now)
	if !a.Valid || *a.Charged != 0 || *a.Shortfall != 7 {
		t.Fatalf("settle when exhausted: %+v", a)
	}
	wantCode(t, "plain verify when exhausted", e.verify(t, token.VerifyRequest{Key: tok.Key}, now), token.VerifyExhausted)

	a = e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: -50}, now)
	wantCode(t, "refund", a, "")
	if got := e.get(t, tok); got.RemainQuota != 50 || got.UsedQuota != 50 || a.Token.RemainQuota != 50 {
		t.Errorf("after refund: remain %d used %d, want 50, 50", got.RemainQuota, got.UsedQuota)
	}
	wantCode(t, "charge 50", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 50}, now), "")
	wantCode(t, "refund 50", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: -50}, now), "")
	if got := e.get(t, tok); got.RemainQuota != 50 || got.UsedQuota != 50 {
		t.Errorf("after charge 50 and refund 50: remain %d used %d, want 50, 50", got.RemainQuota, got.UsedQuota)
	}
	wantCode(t, "refund too large", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: -51}, now), token.VerifyInvalidRequest)
	if got := e.get(t, tok); got.RemainQuota != 50 || got.UsedQuota != 50 {
		t.Errorf("a refused refund changed the token: remain %d used %d", got.RemainQuota, got.UsedQuota)
	}

	// A disabled token still settles and refunds: they skip every check.
	off := token.StatusDisabled
	if _, err := e.tokens.Update(context.Background(), "u1", tok.ID, token.Patch{Status: &off}, now); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "settle disabled", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 10, Settle: true}, now), "")
	wantCode(t, "refund disabled", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: -10}, now), "")

	// Refunds never raise remain_quota past 5e14.
	full := e.create(t, "u1", func() token.Spec { s := spec(); s.RemainQuota = token.MaxQuota; return s }())
	e.verify(t, token.VerifyRequest{Key: full.Key, Consume: 30}, now)
	wantCode(t, "refund capped", e.verify(t, token.VerifyRequest{Key: full.Key, Consume: -10}, now), "")
	if got := e.get(t, full); got.RemainQuota != token.MaxQuota-20 || got.UsedQuota != 20 {
		t.Errorf("refund: remain %d used %d", got.RemainQuota, got.UsedQuota)
	}
}

func TestUnlimited(t *testing.T) {
	e := newEnv(t)
	s := spec()
	s.UnlimitedQuota, s.RemainQuota = true, 10
	tok := e.create(t, "u1", s)
	wantCode(t, "consume", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 500}, now), "")
	a := e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 300, Settle: true}, now)
	if !a.Valid || *a.Charged != 300 || *a.Shortfall != 0 {
		t.Fatalf("settle: %+v", a)
	}
	wantCode(t, "refund", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: -100}, now), "")
	if got := e.get(t, tok); got.RemainQuota != 10 || got.UsedQuota != 700 {
		t.Errorf("unlimited: remain %d used %d, want 10, 700", got.RemainQuota, got.UsedQuota)
	}
}

func TestConcurrentSettles(t *testing.T) {
	e := newEnv(t)
	s := spec()
	s.RemainQuota = 1000
	tok := e.create(t, "u1", s)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var charged, shortfall int64
	for range 30 {
		wg.Go(func() {
			a := e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 50, Settle: true}, now)
			mu.Lock()
			defer mu.Unlock()
			charged += *a.Charged
			shortfall += *a.Shortfall
		})
	}
	wg.Wait()
	got := e.get(t, tok)
	if charged != 1000 || shortfall != 500 || got.RemainQuota != 0 || got.UsedQuota != 1000 {
		t.Errorf("charged %d shortfall %d remain %d used %d; want 1000, 500, 0, 1000", charged, shortfall, got.RemainQuota, got.UsedQuota)
	}
}

// Only consume > 0 with settle is a settle (README "Verify and consume:
// the relay's call"): a settle of nothing is a plain verify, every check applying, not a pass that skips them.
func TestSettleOfNothingIsAPlainVerify(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tok := e.create(t, "u1", spec())
	off := token.StatusDisabled
	if _, err := e.tokens.Update(ctx, "u1", tok.ID, token.Patch{Status: &off}, now); err != nil {
		t.Fatal(err)
	}
	limited := e.create(t, "u1", func() token.Spec { s := spec(); s.RPMLimit = 1; return s }())
	tests := []struct {
		name string
		req  token.VerifyRequest
		want string
	}{
		{"disabled, settle without consume", token.VerifyRequest{Key: tok.Key, Settle: true}, token.VerifyDisabled},
		{"disabled, settle of 0", token.VerifyRequest{Key: tok.Key, Settle: true, Consume: 0}, token.VerifyDisabled},
		{"rpm 1, first settle of nothing counts", token.VerifyRequest{Key: limited.Key, Settle: true}, ""},
		{"rpm 1, second settle of nothing is limited", token.VerifyRequest{Key: limited.Key, Settle: true}, token.VerifyRateLimited},
		{"disabled, settle of 5 skips the checks", token.VerifyRequest{Key: tok.Key, Settle: true, Consume: 5}, ""},
	}
	for _, tt := range tests {
		a := e.verify(t, tt.req, now)
		wantCode(t, tt.name, a, tt.want)
		if tt.req.Consume == 0 && (a.Charged != nil || a.Shortfall != nil) {
			t.Errorf("%s: charged %v shortfall %v, want neither (not a settle)", tt.name, a.Charged, a.Shortfall)
		}
	}
}

// setRPMWindow writes tok's rpm window directly, as another container
// whose clock runs ahead would have.
func (e env) setRPMWindow(tb testing.TB, tok token.Token, window, count int64) {
	tb.Helper()
	_, err := e.db.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
		TableName: aws.String(e.table),
		Key: map[string]types.AttributeValue{
			dynamo.PartitionKey: &types.AttributeValueMemberS{Value: "USER#" + tok.UserID},
			dynamo.SortKey:      &types.AttributeValueMemberS{Value: fmt.Sprintf("TOKEN#%019d", tok.ID)},
		},
		UpdateExpression: aws.String("SET rpm_window = :w, rpm_count = :c"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":w": &types.AttributeValueMemberN{Value: strconv.FormatInt(window, 10)},
			":c": &types.AttributeValueMemberN{Value: strconv.FormatInt(count, 10)},
		},
		ConditionExpression: aws.String("attribute_exists(pk)"),
	})
	if err != nil {
		tb.Fatalf("set rpm window: %v", err)
	}
}

// A stored rpm window later than the verifier's minute (another container's
// clock slightly ahead) is counted in, never moved back, and never an error.
func TestRPMWindowAhead(t *testing.T) {
	ahead := token.MinuteStart(now) + 60
	tests := []struct {
		name   string
		stored int64 // the count already in the window ahead
		limit  int64
		want   []string // answers of successive verifies at now
	}{
		{"room left", 1, 3, []string{"", "", token.VerifyRateLimited}},
		{"full", 3, 3, []string{token.VerifyRateLimited}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			s := spec()
			s.RPMLimit = tt.limit
			tok := e.create(t, "u1", s)
			e.setRPMWindow(t, tok, ahead, tt.stored)
			counted := tt.stored
			for i, want := range tt.want {
				a, err := e.verifier.Verify(context.Background(), token.VerifyRequest{Key: tok.Key, Consume: 1}, now)
				if err != nil {
					t.Fatalf("verify %d: %v, want an answer", i, err)
				}
				wantCode(t, fmt.Sprintf("verify %d", i), a, want)
				if want == "" {
					counted++
				} else if wantRetry := ahead + 60 - now.Unix(); a.RetryAfterSeconds != wantRetry {
					t.Errorf("verify %d: retry_after_seconds %d, want %d (the end of the stored window)", i, a.RetryAfterSeconds, wantRetry)
				}
			}
			st, err := e.ledger.ReadForVerify(context.Background(), tok.UserID, tok.ID, "")
			if err != nil {
				t.Fatal(err)
			}
			if st.RPMWindow != ahead || st.RPMCount != counted {
				t.Errorf("rpm window %d count %d, want %d, %d (counted in the window ahead)", st.RPMWindow, st.RPMCount, ahead, counted)
			}
		})
	}
}

// Settles that fit add to the token without conditioning on the quota
// read, so many at once on one token do not conflict: each makes one
// write attempt, and the quota is split exactly.
func TestConcurrentSettlesDoNotConflict(t *testing.T) {
	e := newEnv(t)
	tok := e.create(t, "u1", spec())                    // 1000
	e.verify(t, token.VerifyRequest{Key: tok.Key}, now) // cache the mapping
	e.counter.Reset()
	const n = 200
	answers := make([]verify.Answer, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			answers[i], errs[i] = e.verifier.Verify(context.Background(), token.VerifyRequest{Key: tok.Key, Consume: 10, Settle: true}, now)
		})
	}
	wg.Wait()
	var charged, shortfall int64
	for i, a := range answers {
		if errs[i] != nil {
			t.Fatalf("settle %d: %v", i, errs[i])
		}
		if !a.Valid || a.Charged == nil || a.Shortfall == nil {
			t.Fatalf("settle %d: %+v, want valid with charged and shortfall", i, a)
		}
		charged += *a.Charged
		shortfall += *a.Shortfall
	}
	got := e.get(t, tok)
	if charged != 1000 || shortfall != 1000 || got.RemainQuota != 0 || got.UsedQuota != 1000 {
		t.Errorf("charged %d shortfall %d remain %d used %d; want 1000, 1000, 0, 1000", charged, shortfall, got.RemainQuota, got.UsedQuota)
	}
	if writes := e.counter.Counts()["UpdateItem"]; writes > n {
		t.Errorf("%d UpdateItem requests for %d settles, want at most one each (no retries)", writes, n)
	}
}

// badChecksum changes key's last character to another one, so that it no
// longer passes its checksum.
func badChecksum(key string) string {
	last := "x"
	if key[len(key)-1] == 'x' {
		last = "y"
	}
	return key[:len(key)-1] + last
}
