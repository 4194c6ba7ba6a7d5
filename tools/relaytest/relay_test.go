package relaytest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/llmgw/token-service/internal/seal"
	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/token/dynamo"
	"github.com/llmgw/token-service/relay"
	"github.com/llmgw/token-service/tools/ddblocal"
	"github.com/llmgw/token-service/tools/stacktest"
)

func TestMain(m *testing.M) { ddblocal.RunTests(m) }

const verifyFunction = "VerifyTokenFunction"

// fault is what the network does to one attempt.
type fault int

const (
	pass           fault = iota // forwarded, and answered
	refuse                      // the connection closes before the function sees the request
	throttle                    // Lambda's 429 TooManyRequestsException; the function does not run
	dropAnswer                  // the function runs; the connection closes before its answer
	withholdAnswer              // the function runs; its answer never comes, until the client gives up
)

// network is the test double between the relay client and the local Invoke
// API: it fails attempts as its plan says, one fault per attempt, then
// passes everything. It records every request body and every answer the
// function gave, reached or not.
type network struct {
	target string
	mu     sync.Mutex
	plan   []fault
	bodies [][]byte
	// answers are the function's answers, in the order it gave them.
	answers [][]byte
}

func (n *network) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	n.mu.Lock()
	f := pass
	if len(n.plan) > 0 {
		f, n.plan = n.plan[0], n.plan[1:]
	}
	n.bodies = append(n.bodies, body)
	n.mu.Unlock()
	switch f {
	case refuse:
		closeConnection(w)
		return
	case throttle:
		w.Header().Set("X-Amzn-Errortype", "TooManyRequestsException")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"Reason":"ReservedFunctionConcurrentInvocationLimitExceeded","Type":"User","message":"Rate Exceeded."}`))
		return
	}
	// The function runs whatever the client does meanwhile.
	req, err := http.NewRequestWithContext(context.Background(), r.Method, n.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		closeConnection(w)
		return
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	n.mu.Lock()
	n.answers = append(n.answers, answer)
	n.mu.Unlock()
	switch f {
	case dropAnswer:
		closeConnection(w)
		return
	case withholdAnswer:
		<-r.Context().Done() // the client gave up
		return
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}

func closeConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

// env is the verify function under the local runner, the network double
// in front of its Invoke API, and the store to set tokens up with.
type env struct {
	st     *stacktest.Stack
	net    *network
	tokens *dynamo.Tokens
}

func start(t *testing.T) *env {
	t.Helper()
	st := stacktest.Start(t, stacktest.Options{Template: "../../template.yaml", Functions: []string{verifyFunction}, MaxInstances: 8})
	core, err := dynamo.NewCore(st.DB, st.Table)
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	sealer, err := seal.NewAESGCM(key)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := dynamo.NewTokens(core, sealer, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &env{st: st, net: &network{target: st.LambdaURL}, tokens: tokens}
}

// client is the relay client a gateway builds, pointed at the network
// double's URL (the AWS SDK's own retries off, so that every attempt is
// the relay client's).
func (e *env) client(srvURL string, opts relay.Options) *relay.Client {
	return relay.New(stacktest.NewLambdaClient(srvURL), verifyFunction, opts)
}

func (e *env) create(t *testing.T, user string, quota int64) token.Token {
	t.Helper()
	s := token.Spec{Name: "relay", Count: 1, ExpiredTime: token.NeverExpires, RemainQuota: quota}
	toks, err := s.Tokens(user, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.tokens.Create(context.Background(), user, toks)
	if err != nil {
		t.Fatal(err)
	}
	return got[0]
}

func (e *env) quotas(t *testing.T, what string, tok token.Token, remain, used int64) {
	t.Helper()
	got, err := e.tokens.Get(context.Background(), tok.UserID, tok.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.RemainQuota != remain || got.UsedQuota != used {
		t.Errorf("%s: remain %d used %d, want %d, %d", what, got.RemainQuota, got.UsedQuota, remain, used)
	}
}

func (e *env) plan(faults ...fault) {
	e.net.mu.Lock()
	defer e.net.mu.Unlock()
	e.net.plan, e.net.bodies, e.net.answers = faults, nil, nil
}

func serve(t *testing.T, n *network) string {
	t.Helper()
	srv := httptest.NewServer(n)
	t.Cleanup(srv.Close)
	return srv.URL
}

// The relay client's retries over a network that fails its first attempts
// in every way: refused before the function, throttled, the answer lost
// after the function ran. The charge happens once, and the answer that
// gets through is the first one, replayed.
func TestRetriesThroughAFailingNetwork(t *testing.T) {
	e := start(t)
	url := serve(t, e.net)
	tok := e.create(t, "relay-user", 1000)
	c := e.client(url, relay.Options{Attempts: 4, AttemptTimeout: 30 * time.Second})
	ctx := context.Background()
	call := relay.Call{Key: tok.Key, Model: "gpt-4", ClientIP: "203.0.113.7"}

	e.st.Invocations.Take()
	e.plan(refuse, throttle, dropAnswer)
	h, err := c.Hold(ctx, call, 100)
	if err != nil {
		t.Fatalf("hold: %v", err)
	}
	if got := len(e.net.bodies); got != 4 {
		t.Fatalf("%d attempts reached the network, want 4", got)
	}
	for i, b := range e.net.bodies {
		if !bytes.Equal(b, e.net.bodies[0]) {
			t.Errorf("attempt %d sent %s, want the first attempt's %s", i+1, b, e.net.bodies[0])
		}
	}
	if n := e.st.Invocations.Take()[verifyFunction]; n != 2 {
		t.Errorf("the function ran %d times, want 2 (the lost answer's attempt and the last)", n)
	}
	if !h.Answer.Replayed || h.Answer.Charged != 100 || h.Answer.Delta != 100 {
		t.Errorf("hold answer %+v: want the first answer replayed, charged 100", h.Answer)
	}
	e.quotas(t, "after the hold", tok, 900, 100)

	e.plan(dropAnswer, throttle)
	a, err := c.Settle(ctx, h, 40)
	if err != nil {
		t.Fatalf("settle: %v", err)
	}
	if !a.Replayed || a.Charged != 40 || a.Delta != -60 || a.Shortfall != 0 {
		t.Errorf("settle answer %+v: want charged 40, delta -60, replayed", a)
	}
	e.quotas(t, "after the settle", tok, 960, 40)

	// Every attempt failing is ErrUnavailable, and the hold (whatever
	// became of it) can still be settled or refunded: here it was charged.
	e.plan(dropAnswer, dropAnswer, dropAnswer, dropAnswer)
	lost, err := c.Hold(ctx, call, 10)
	if !errors.Is(err, relay.ErrUnavailable) || lost == nil {
		t.Fatalf("hold over a dead network: %v, %v; want ErrUnavailable and the hold", lost, err)
	}
	e.quotas(t, "after the lost hold", tok, 950, 50)
	if a, err := c.Refund(ctx, lost, lost.Amount); err != nil || a.Charged != 0 || a.Delta != -10 {
		t.Errorf("refund of the lost hold: %+v, %v; want delta -10", a, err)
	}
	e.quotas(t, "after its refund", tok, 960, 40)
}

// A hold whose answer is lost (the client gives up before it comes) and
// is sent again with the same id: charged once, and both answers are the
// same answer.
func TestLostAnswer(t *testing.T) {
	e := start(t)
	url := serve(t, e.net)
	tok := e.create(t, "relay-user", 1000)
	c := e.client(url, relay.Options{Attempts: 2, AttemptTimeout: 3 * time.Second})

	e.plan(withholdAnswer)
	h, err := c.Hold(context.Background(), relay.Call{Key: tok.Key, Model: "gpt-4"}, 100)
	if err != nil {
		t.Fatalf("hold: %v", err)
	}
	if len(e.net.answers) != 2 {
		t.Fatalf("the function answered %d times, want 2", len(e.net.answers))
	}
	var first relay.Answer
	if err := json.Unmarshal(e.net.answers[0], &first); err != nil {
		t.Fatal(err)
	}
	if first.Replayed || !h.Answer.Replayed {
		t.Errorf("replayed: lost answer %v, retry's %v; want false, true", first.Replayed, h.Answer.Replayed)
	}
	retried := h.Answer
	retried.Replayed = false
	if retried != first {
		t.Errorf("answers differ:\n  lost %+v\nretry %+v", first, h.Answer)
	}
	e.quotas(t, "after the retried hold", tok, 900, 100)
}

// The hold / settle pattern through the real function: 50 concurrent
// copies of one hold charge once; settle above the hold charges what is
// left; the same settle again changes nothing.
func TestHoldAndSettle(t *testing.T) {
	e := start(t)
	url := serve(t, e.net)
	tok := e.create(t, "relay-user", 150)
	c := e.client(url, relay.Options{AttemptTimeout: 30 * time.Second})
	ctx := context.Background()
	call := relay.Call{Key: tok.Key, Model: "gpt-4", ClientIP: "203.0.113.7"}

	id := relay.NewRequestID()
	ev := relay.Event{Key: tok.Key, Model: call.Model, ClientIP: call.ClientIP, Consume: 100, RequestID: id}
	const n = 50
	answers := make([]relay.Answer, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { answers[i], errs[i] = c.Do(ctx, ev) })
	}
	wg.Wait()
	applied := 0
	want := answers[0]
	want.Replayed = false
	for i, a := range answers {
		if errs[i] != nil {
			t.Fatalf("copy %d: %v", i, errs[i])
		}
		if !a.Replayed {
			applied++
		}
		if a.Replayed = false; a != want {
			t.Errorf("copy %d answered %+v, copy 0 %+v", i, a, answers[0])
		}
	}
	if applied != 1 {
		t.Errorf("%d copies applied, want 1", applied)
	}
	e.quotas(t, "after 50 copies of a hold of 100", tok, 50, 100)

	h := &relay.Hold{RequestID: id, Call: call, Amount: 100}
	a, err := c.Settle(ctx, h, 250)
	if err != nil || a.Charged != 150 || a.Delta != 50 || a.Shortfall != 100 || a.Token.Status != 4 {
		t.Fatalf("settle 250: %+v, %v; want charged 150, delta 50, shortfall 100, status 4", a, err)
	}
	again, err := c.Settle(ctx, h, 250)
	if err != nil || !again.Replayed {
		t.Fatalf("the same settle again: %+v, %v; want replayed", again, err)
	}
	if _, err := c.Settle(ctx, h, 260); !errors.Is(err, relay.RequestConflict) {
		t.Errorf("another final: %v, want request_conflict", err)
	}
	if _, err := c.Hold(ctx, call, 10); !errors.Is(err, relay.Exhausted) {
		t.Errorf("a new hold on the exhausted token: %v, want exhausted", err)
	}
	e.quotas(t, "after the settles", tok, 0, 150)
}
