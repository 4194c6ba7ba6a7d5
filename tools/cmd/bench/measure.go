package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/llmgw/token-service/internal/api"
	"github.com/llmgw/token-service/internal/auth"
	"github.com/llmgw/token-service/internal/authorizer"
	"github.com/llmgw/token-service/internal/ddbcount"
	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/verify"
	"github.com/llmgw/token-service/relay"
)

// Row is one measured operation: an endpoint at a token count, or a verify
// case.
type Row struct {
	Name     string `json:"name"`
	Function string `json:"function"`
	Tokens   int    `json:"tokens,omitempty"`
	Calls    int    `json:"calls"`
	// In-process latency and allocations per call.
	P50Micros      float64 `json:"p50_us"`
	P99Micros      float64 `json:"p99_us"`
	MeanMicros     float64 `json:"mean_us"`
	AllocsPerCall  float64 `json:"allocs_per_call"`
	BytesPerCall   float64 `json:"bytes_per_call"`
	RequestsMedian int     `json:"ddb_requests_median"`
	RequestsMax    int     `json:"ddb_requests_max"`
	RequestsMean   float64 `json:"ddb_requests_mean"`
	// Ops is the mean number of requests per call by operation.
	Ops map[string]float64 `json:"ddb_ops"`
	// LocalRCU and LocalWCU are the mean capacity per call DynamoDB Local
	// reported (ConsumedCapacity), read and write operations apart.
	LocalRCU float64 `json:"local_read_units"`
	LocalWCU float64 `json:"local_write_units"`
	// RRU and WRU are the mean on-demand request units per call by AWS's
	// rules: DynamoDB Local's figures, except transactions, counted as
	// 2 WRU per item per started KB.
	RRU float64 `json:"rru"`
	WRU float64 `json:"wru"`
	// TxLocalUnits and TxAWSUnits compare the two for the transactions.
	TxLocalUnits float64 `json:"tx_local_units,omitempty"`
	TxAWSUnits   float64 `json:"tx_aws_wru,omitempty"`
	Minimum      string  `json:"minimum"`
	Target       string  `json:"target,omitempty"`
	Met          *bool   `json:"target_met,omitempty"`
	Note         string  `json:"note,omitempty"`
}

// call is one measured invocation; prep (unmeasured) runs before it.
type call struct {
	prep func(i int) error
	run  func(i int) error
}

var readOps = map[string]bool{"GetItem": true, "Query": true, "Scan": true, "BatchGetItem": true, "TransactGetItems": true}

// measure runs c warmup+calls times and fills r's latency, allocations and
// DynamoDB figures from the measured calls.
func (e *env) measure(r *Row, c call, warmup, calls int) error {
	var (
		durs     []time.Duration
		reqs     []int
		ops      = map[string]float64{}
		mallocs  uint64
		bytes    uint64
		ms0, ms1 runtime.MemStats
	)
	for i := range warmup + calls {
		if c.prep != nil {
			if err := c.prep(i); err != nil {
				return fmt.Errorf("%s: prepare: %w", r.Name, err)
			}
		}
		e.counter.Reset()
		measured := i >= warmup
		if measured {
			runtime.ReadMemStats(&ms0)
		}
		start := time.Now()
		err := c.run(i)
		d := time.Since(start)
		if measured {
			runtime.ReadMemStats(&ms1)
		}
		counts, caps := e.counter.Counts(), e.counter.Capacities()
		if err != nil {
			return fmt.Errorf("%s at %d tokens: %w", r.Name, r.Tokens, err)
		}
		e.noteItems(caps)
		if !measured {
			continue
		}
		durs = append(durs, d)
		mallocs += ms1.Mallocs - ms0.Mallocs
		bytes += ms1.TotalAlloc - ms0.TotalAlloc
		n := 0
		for op, k := range counts {
			ops[op] += float64(k)
			n += k
		}
		reqs = append(reqs, n)
		for op, x := range caps {
			local := x.Units + x.Read + x.Write
			aws := local
			if op == "TransactWriteItems" {
				aws = txWRU(x)
				r.TxLocalUnits += local
				r.TxAWSUnits += aws
			}
			if readOps[op] {
				r.LocalRCU += local
				r.RRU += aws
			} else {
				r.LocalWCU += local
				r.WRU += aws
			}
		}
	}
	n := float64(len(durs))
	r.Calls = len(durs)
	slices.Sort(durs)
	slices.Sort(reqs)
	r.P50Micros = micros(percentile(durs, 0.50))
	r.P99Micros = micros(percentile(durs, 0.99))
	var sum time.Duration
	for _, d := range durs {
		sum += d
	}
	r.MeanMicros = micros(sum) / n
	r.AllocsPerCall = float64(mallocs) / n
	r.BytesPerCall = float64(bytes) / n
	r.RequestsMedian = reqs[len(reqs)/2]
	r.RequestsMax = reqs[len(reqs)-1]
	total := 0
	for _, k := range reqs {
		total += k
	}
	r.RequestsMean = float64(total) / n
	r.Ops = map[string]float64{}
	for op, k := range ops {
		r.Ops[op] = k / n
	}
	r.LocalRCU /= n
	r.LocalWCU /= n
	r.RRU /= n
	r.WRU /= n
	r.TxLocalUnits /= n
	r.TxAWSUnits /= n
	return nil
}

// txWRU is the write request units AWS charges for the transactions of x:
// 2 per item per started KB. The sizes of Put items are known; every other
// action's item is one the bench wrote earlier, all under 1 KB (the report
// gives the largest), so it counts 2.
func txWRU(x ddbcount.Capacity) float64 {
	units := 0.0
	for _, b := range x.TxPutBytes {
		units += 2 * math.Ceil(float64(max(b, 1))/1024)
	}
	return units + 2*float64(x.TxActions-len(x.TxPutBytes))
}

func (e *env) noteItems(caps map[string]ddbcount.Capacity) {
	for _, x := range caps {
		for _, b := range x.TxPutBytes {
			e.largestItem = max(e.largestItem, b)
		}
	}
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// httpCall builds the payload 2.0 event API Gateway sends after the
// authorizer allowed userID.
func httpCall(method, path, query string, params map[string]string, body, userID string, headers map[string]string) events.APIGatewayV2HTTPRequest {
	h := map[string]string{"content-type": "application/json", "host": "api.example.com"}
	for k, v := range headers {
		h[k] = v
	}
	qs := map[string]string{}
	for _, kv := range strings.Split(query, "&") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			qs[k] = v
		}
	}
	ev := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RawPath: path, RawQueryString: query, Headers: h,
		QueryStringParameters: qs, PathParameters: params, Body: body,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			Stage: "$default", RequestID: token.MaskKey("bench"),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: path, Protocol: "HTTP/1.1", SourceIP: "127.0.0.1", UserAgent: "bench"},
		},
	}
	if userID != "" {
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			Lambda: map[string]any{"userId": userID, "role": auth.RoleUser},
		}
	}
	return ev
}

type lambdaHTTP func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)

// invokeOK runs ev through h and returns the body of a 2xx answer.
func invokeOK(ctx context.Context, h lambdaHTTP, ev events.APIGatewayV2HTTPRequest) (string, error) {
	out, err := h(ctx, ev)
	if err != nil {
		return "", err
	}
	if out.StatusCode/100 != 2 {
		return "", fmt.Errorf("%s %s: status %d: %.200s", ev.RequestContext.HTTP.Method, ev.RawPath, out.StatusCode, out.Body)
	}
	return out.Body, nil
}

// createTokens stores n tokens named name, name-2, ... for user, unmeasured.
func (e *env) createTokens(ctx context.Context, user, name string, n int) ([]token.Token, error) {
	var out []token.Token
	for len(out) < n {
		s := token.Spec{Name: name, Count: min(n-len(out), token.MaxCount), ExpiredTime: token.NeverExpires, RemainQuota: 1_000_000, UnlimitedQuota: true}
		toks, err := s.Tokens(user, time.Now())
		if err != nil {
			return nil, err
		}
		got, err := e.tokens.Create(ctx, user, toks)
		if err != nil {
			return nil, fmt.Errorf("create tokens: %w", err)
		}
		out = append(out, got...)
	}
	return out, nil
}

// measureEndpoints measures every endpoint for a user with n tokens.
func (e *env) measureEndpoints(ctx context.Context, o options, n int) ([]Row, error) {
	user := fmt.Sprintf("bench-%d", n)
	toks, err := e.createTokens(ctx, user, "tok", n)
	if err != nil {
		return nil, err
	}
	mid := toks[len(toks)/2]
	var clock api.Clock = time.Now
	h := map[string]lambdaHTTP{
		"ListTokensFunction":        api.LambdaHandler(api.ListTokens(e.tokens, clock)),
		"SearchTokensFunction":      api.LambdaHandler(api.SearchTokens(e.tokens, clock)),
		"GetTokenFunction":          api.LambdaHandler(api.GetToken(e.tokens, clock)),
		"CreateTokenFunction":       api.LambdaHandler(api.CreateTokens(e.tokens, e.rules, clock)),
		"UpdateTokenFunction":       api.LambdaHandler(api.UpdateToken(e.tokens, e.rules, clock)),
		"DeleteTokenFunction":       api.LambdaHandler(api.DeleteToken(e.tokens)),
		"BatchDeleteTokensFunction": api.LambdaHandler(api.BatchDeleteTokens(e.tokens)),
		"UsageTokenFunction":        api.LambdaHandler(api.UsageToken(e.tokens, clock)),
		// A reveal limit the bench never reaches: it measures the work, not the 429.
		"RevealTokenKeyFunction":  api.LambdaHandler(api.RevealKey(e.keys, benchRevealsPerMinute, clock)),
		"RevealTokenKeysFunction": api.LambdaHandler(api.RevealKeys(e.keys, benchRevealsPerMinute, clock)),
		"RotateTokenFunction":     api.LambdaHandler(api.RotateToken(e.keys, clock)),
	}
	revealIDs := make([]int64, 0, 100)
	for _, t := range toks[:min(len(toks), 100)] {
		revealIDs = append(revealIDs, t.ID)
	}
	get := func(fn string, ev func(i int) events.APIGatewayV2HTTPRequest) func(int) error {
		return func(i int) error { _, err := invokeOK(ctx, h[fn], ev(i)); return err }
	}
	idPath := func(id int64) (string, map[string]string) {
		return fmt.Sprintf("/api/token/%d", id), map[string]string{"id": fmt.Sprint(id)}
	}
	var victim int64
	var batch []int64
	heavy := min(o.calls, 20) // batch delete prepares 100 tokens per call
	type tc struct {
		name, fn string
		c        call
		calls    int
		minimum  string
	}
	cases := []tc{
		{"list page 1", "ListTokensFunction", call{run: get("ListTokensFunction", func(int) events.APIGatewayV2HTTPRequest {
			return httpCall("GET", "/api/token/", "p=1&size=20", nil, "", user, nil)
		})}, o.calls, "1 strongly consistent Query returning the meta item and 20 tokens"},
		{"list page 10", "ListTokensFunction", call{run: get("ListTokensFunction", func(int) events.APIGatewayV2HTTPRequest {
			return httpCall("GET", "/api/token/", "p=10&size=20", nil, "", user, nil)
		})}, o.calls, "1 Query for the count + 1 Query reading 20 tokens after skipping 180 keys (DynamoDB has no offset: it reads and bills the skipped items, or keeps a page index)"},
		{"search by keyword", "SearchTokensFunction", call{run: get("SearchTokensFunction", func(int) events.APIGatewayV2HTTPRequest {
			return httpCall("GET", "/api/token/search", "keyword=tok-1", nil, "", user, nil)
		})}, o.calls, "read every token of the user once (names are not indexed): ceil(n*item size/1 MB) Query pages, no per-match request"},
		{"search by exact key", "SearchTokensFunction", call{run: get("SearchTokensFunction", func(int) events.APIGatewayV2HTTPRequest {
			return httpCall("GET", "/api/token/search", "token="+mid.Key, nil, "", user, nil)
		})}, o.calls, "1 GetItem of the key lookup item + 1 GetItem of the token"},
		{"get", "GetTokenFunction", call{run: get("GetTokenFunction", func(int) events.APIGatewayV2HTTPRequest {
			p, params := idPath(mid.ID)
			return httpCall("GET", p, "", params, "", user, nil)
		})}, o.calls, "1 strongly consistent GetItem"},
		{"create", "CreateTokenFunction", call{
			run: func(int) error {
				body, err := invokeOK(ctx, h["CreateTokenFunction"], httpCall("POST", "/api/token/", "", nil, `{"name":"bench","expired_time":-1,"remain_quota":1000}`, user, nil))
				if err != nil {
					return err
				}
				var env struct {
					Data struct {
						ID int64 `json:"id"`
					} `json:"data"`
				}
				if err := json.Unmarshal([]byte(body), &env); err != nil {
					return err
				}
				victim = env.Data.ID
				return nil
			},
			prep: func(int) error {
				if victim == 0 {
					return nil
				}
				err := e.tokens.Delete(ctx, user, victim) // keep the count at n
				victim = 0
				return err
			},
		}, o.calls, "1 read of the meta item (count, next id) + 1 transaction of 2n+1 items (token, key lookup, meta)"},
		{"update", "UpdateTokenFunction", call{run: get("UpdateTokenFunction", func(i int) events.APIGatewayV2HTTPRequest {
			return httpCall("PUT", "/api/token/", "", nil, fmt.Sprintf(`{"id":%d,"name":"renamed-%d","remain_quota":%d}`, mid.ID, i%1000, 1000+i), user, nil)
		})}, o.calls, "1 conditional UpdateItem returning the new item"},
		{"status-only update", "UpdateTokenFunction", call{run: get("UpdateTokenFunction", func(i int) events.APIGatewayV2HTTPRequest {
			return httpCall("PUT", "/api/token/", "status_only=true", nil, fmt.Sprintf(`{"id":%d,"status":%d}`, mid.ID, 1+i%2), user, nil)
		})}, o.calls, "1 conditional UpdateItem"},
		{"delete", "DeleteTokenFunction", call{
			prep: func(int) error {
				t, err := e.createTokens(ctx, user, "victim", 1)
				if err == nil {
					victim = t[0].ID
				}
				return err
			},
			run: get("DeleteTokenFunction", func(int) events.APIGatewayV2HTTPRequest {
				p, params := idPath(victim)
				return httpCall("DELETE", p, "", params, "", user, nil)
			}),
		}, o.calls, "1 read of the key hash + 1 transaction of 3 items (token, key lookup, meta count)"},
		{"batch delete of 100", "BatchDeleteTokensFunction", call{
			prep: func(int) error {
				t, err := e.createTokens(ctx, user, "batch", 100)
				batch = batch[:0]
				for _, x := range t {
					batch = append(batch, x.ID)
				}
				return err
			},
			run: get("BatchDeleteTokensFunction", func(int) events.APIGatewayV2HTTPRequest {
				b, _ := json.Marshal(map[string][]int64{"ids": batch})
				return httpCall("POST", "/api/token/batch", "", nil, string(b), user, nil)
			}),
		}, heavy, "1 BatchGetItem of 100 keys + ceil(100/49)=3 transactions of 2k+1 items (a transaction holds 100 actions)"},
		{"usage by key", "UsageTokenFunction", call{run: get("UsageTokenFunction", func(int) events.APIGatewayV2HTTPRequest {
			return httpCall("GET", "/api/usage/token", "", nil, "", "", map[string]string{"authorization": "Bearer " + mid.Key})
		})}, o.calls, "1 GetItem of the key lookup + 1 strongly consistent BatchGetItem of the token and its user's meta item (or 1 read if the lookup item carried the usage and the user's flag)"},
		{"reveal", "RevealTokenKeyFunction", call{run: get("RevealTokenKeyFunction", func(int) events.APIGatewayV2HTTPRequest {
			p, params := idPath(mid.ID)
			return httpCall("POST", p+"/key", "", params, "", user, nil)
		})}, o.calls, "1 UpdateItem counting the user's reveals + 1 strongly consistent GetItem of the token"},
		{fmt.Sprintf("batch reveal of %d", len(revealIDs)), "RevealTokenKeysFunction", call{run: get("RevealTokenKeysFunction", func(int) events.APIGatewayV2HTTPRequest {
			b, _ := json.Marshal(map[string][]int64{"ids": revealIDs})
			return httpCall("POST", "/api/token/batch/keys", "", nil, string(b), user, nil)
		})}, o.calls, "1 UpdateItem counting the user's reveals + 1 BatchGetItem of the tokens"},
		{"rotate", "RotateTokenFunction", call{
			prep: func(int) error {
				t, err := e.createTokens(ctx, user, "rotated", 1)
				if err == nil {
					victim = t[0].ID
				}
				return err
			},
			run: get("RotateTokenFunction", func(int) events.APIGatewayV2HTTPRequest {
				p, params := idPath(victim)
				return httpCall("POST", p+"/rotate", "", params, `{"grace_seconds":60}`, user, nil)
			}),
		}, heavy, "1 GetItem of the token + 1 transaction of 3 items (token, new key lookup, old key lookup)"},
	}
	var rows []Row
	for _, c := range cases {
		r := Row{Name: c.name, Function: c.fn, Tokens: n, Minimum: c.minimum}
		if err := e.measure(&r, c.c, min(o.warmup, c.calls), c.calls); err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// benchRevealsPerMinute is far above what the bench sends in a minute.
const benchRevealsPerMinute = 1_000_000

// measureAuthorizer measures the authorizer every HTTP request runs
// (AuthorizerCacheSeconds is 0 by default).
func (e *env) measureAuthorizer(ctx context.Context, o options) (Row, error) {
	at, err := auth.NewAccessToken()
	if err != nil {
		return Row{}, err
	}
	if err := e.access.PutAccessToken(ctx, auth.Hash(at), auth.Principal{UserID: "bench-auth", Role: auth.RoleUser}); err != nil {
		return Row{}, err
	}
	a := authorizer.New(e.access)
	ev := events.APIGatewayV2CustomAuthorizerV2Request{Version: "2.0", Type: "REQUEST", RouteKey: "GET /api/token/{id}", Headers: map[string]string{"authorization": "Bearer " + at}}
	r := Row{Name: "authorizer (every HTTP request)", Function: "AuthorizerFunction", Minimum: "1 strongly consistent GetItem of the access token item"}
	err = e.measure(&r, call{run: func(int) error {
		v, err := a.Handle(ctx, ev)
		if err == nil && !v.IsAuthorized {
			err = fmt.Errorf("authorizer refused the bench's access token")
		}
		return err
	}}, o.warmup, o.calls)
	return r, err
}

// measureVerify measures the relay's verify through its Lambda handler.
func (e *env) measureVerify(ctx context.Context, o options) ([]Row, error) {
	const user = "bench-verify"
	plain, err := e.createTokens(ctx, user, "plain", 1)
	if err != nil {
		return nil, err
	}
	rpmSpec := token.Spec{Name: "rpm", Count: 1, ExpiredTime: token.NeverExpires, UnlimitedQuota: true, RPMLimit: 1_000_000}
	rpmToks, err := rpmSpec.Tokens(user, time.Now())
	if err != nil {
		return nil, err
	}
	rpm, err := e.tokens.Create(ctx, user, rpmToks)
	if err != nil {
		return nil, err
	}
	payload := func(key string, consume int) []byte {
		b, _ := json.Marshal(map[string]any{"key": key, "model": "gpt-4", "client_ip": "10.0.0.1", "consume": consume})
		return b
	}
	warm := verify.NewInvoker(verify.New(e.ledger, 0), time.Now)
	invoke := func(inv verify.Invoker, p []byte, wantValid bool) error {
		out, err := inv.Invoke(ctx, p)
		if err != nil {
			return err
		}
		var a verify.Answer
		if err := json.Unmarshal(out, &a); err != nil {
			return err
		}
		if a.Valid != wantValid {
			return fmt.Errorf("verify answered %s", out)
		}
		return nil
	}
	// The request id rows charge a limited token of the largest quota.
	quotaSpec := token.Spec{Name: "requests", Count: 1, ExpiredTime: token.NeverExpires, RemainQuota: token.MaxQuota}
	quotaToks, err := quotaSpec.Tokens(user, time.Now())
	if err != nil {
		return nil, err
	}
	requests, err := e.tokens.Create(ctx, user, quotaToks)
	if err != nil {
		return nil, err
	}
	withID := func(consume int, settle bool, id string) []byte {
		b, _ := json.Marshal(map[string]any{"key": requests[0].Key, "model": "gpt-4", "client_ip": "10.0.0.1",
			"consume": consume, "settle": settle, "request_id": id})
		return b
	}
	// The windows row charges a token with three spend windows, each
	// far above what the calls charge, so every charge is counted in all
	// three and none is refused.
	windowSpec := token.Spec{Name: "windows", Count: 1, ExpiredTime: token.NeverExpires, RemainQuota: token.MaxQuota,
		Budgets:        token.Budgets{token.PeriodMinute: 1e12, token.PeriodDay: 1e13, token.PeriodMonth: 1e14},
		BudgetTimezone: "Asia/Shanghai"}
	windowToks, err := windowSpec.Tokens(user, time.Now())
	if err != nil {
		return nil, err
	}
	windowed, err := e.tokens.Create(ctx, user, windowToks)
	if err != nil {
		return nil, err
	}
	var id string // the request id of the row's call
	newID := func(int) error { id = relay.NewRequestID(); return nil }
	held := func(int) error { id = relay.NewRequestID(); return invoke(warm, withID(2, false, id), true) }
	var fresh verify.Invoker
	cases := []struct {
		name, minimum string
		c             call
	}{
		{"verify (warm)", "1 strongly consistent read of the token (and its user's status)", call{run: func(int) error { return invoke(warm, payload(plain[0].Key, 0), true) }}},
		{"verify+consume", "1 read + 1 conditional UpdateItem", call{run: func(int) error { return invoke(warm, payload(plain[0].Key, 1), true) }}},
		{"verify+consume, 3 windows", "1 read + 1 conditional UpdateItem checking and counting the minute, day and month windows", call{
			run: func(int) error { return invoke(warm, payload(windowed[0].Key, 1), true) }}},
		{"first use of a key", "1 GetItem of the key lookup item + the warm verify", call{
			prep: func(int) error { fresh = verify.NewInvoker(verify.New(e.ledger, 0), time.Now); return nil },
			run:  func(int) error { return invoke(fresh, payload(plain[0].Key, 0), true) },
		}},
		{"rpm_limit set", "the warm verify + 1 conditional UpdateItem counting the minute", call{run: func(int) error { return invoke(warm, payload(rpm[0].Key, 0), true) }}},
		{"malformed key", "no request", call{run: func(int) error { return invoke(warm, []byte(`{"key":"sk-not-a-key"}`), false) }}},
		{"hold (request id)", "1 read (token, user, record) + 1 TransactWriteItems (token, record)", call{
			prep: newID, run: func(int) error { return invoke(warm, withID(2, false, id), true) }}},
		{"settle (request id)", "1 read + 1 TransactWriteItems; the hold before it unmeasured", call{
			prep: held, run: func(int) error { return invoke(warm, withID(3, true, id), true) }}},
		{"refund (request id)", "1 read + 1 TransactWriteItems; the hold before it unmeasured", call{
			prep: held, run: func(int) error { return invoke(warm, withID(-2, false, id), true) }}},
		{"duplicate hold (request id)", "1 read, no write", call{
			prep: held, run: func(int) error { return invoke(warm, withID(2, false, id), true) }}},
	}
	var rows []Row
	for _, c := range cases {
		r := Row{Name: c.name, Function: "VerifyTokenFunction", Minimum: c.minimum}
		if err := e.measure(&r, c.c, o.warmup, o.calls); err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	return rows, nil
}
