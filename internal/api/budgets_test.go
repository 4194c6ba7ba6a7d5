package api_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/llmgw/token-service/internal/api"
	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/token/memstore"
)

// usages is budget_usage as a response carries it.
type usages = map[token.Period]token.BudgetUsage

// noBudgets is want as a response shows a token without spend windows.
func noBudgets(want api.Token) api.Token {
	want.Budgets = token.Budgets{}
	want.BudgetUsage = usages{}
	return want
}

func TestParseCreateBudgets(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		wantB    token.Budgets
		wantZone string
		code     string
	}{
		{"the worked example", `{"name":"a","unlimited_quota":true,"budgets":{"day":100000,"minute":5000}}`,
			token.Budgets{"day": 100000, "minute": 5000}, "", ""},
		{"every period and a zone", `{"name":"a","budgets":{"minute":1,"hour":2,"day":3,"week":4,"month":5},"budget_timezone":"Asia/Shanghai"}`,
			token.Budgets{"minute": 1, "hour": 2, "day": 3, "week": 4, "month": 5}, "Asia/Shanghai", ""},
		{"absent", `{"name":"a"}`, nil, "", ""},
		{"null", `{"name":"a","budgets":null,"budget_timezone":null}`, nil, "", ""},
		{"empty object", `{"name":"a","budgets":{}}`, nil, "", ""},
		{"zero is no window", `{"name":"a","budgets":{"day":0,"hour":10}}`, token.Budgets{"hour": 10}, "", ""},
		{"at the limit", `{"name":"a","budgets":{"month":500000000000000}}`, token.Budgets{"month": token.MaxQuota}, "", ""},
		{"the default zone, said", `{"name":"a","budget_timezone":""}`, nil, "", ""},
		{"unknown period", `{"name":"a","budgets":{"year":10}}`, nil, "", token.EInvalidBudgets},
		{"negative", `{"name":"a","budgets":{"day":-1}}`, nil, "", token.EInvalidBudgets},
		{"over 5e14", `{"name":"a","budgets":{"day":500000000000001}}`, nil, "", token.EInvalidBudgets},
		{"past int64", `{"name":"a","budgets":{"day":99999999999999999999}}`, nil, "", token.EInvalidBudgets},
		{"a fraction", `{"name":"a","budgets":{"day":1.5}}`, nil, "", token.EInvalidBudgets},
		{"an exponent", `{"name":"a","budgets":{"day":1e3}}`, nil, "", token.EInvalidBudgets},
		{"a string", `{"name":"a","budgets":{"day":"100"}}`, nil, "", token.EInvalidBudgets},
		{"a null limit", `{"name":"a","budgets":{"day":null}}`, nil, "", token.EInvalidBudgets},
		{"a boolean", `{"name":"a","budgets":{"day":true}}`, nil, "", token.EInvalidBudgets},
		{"budgets a string", `{"name":"a","budgets":"day=100"}`, nil, "", token.EInvalidBudgets},
		{"budgets an array", `{"name":"a","budgets":[100]}`, nil, "", token.EInvalidBudgets},
		{"budgets a number", `{"name":"a","budgets":100}`, nil, "", token.EInvalidBudgets},
		{"unknown zone", `{"name":"a","budgets":{"day":1},"budget_timezone":"Mars/Olympus"}`, nil, "", token.EInvalidBudgets},
		{"the machine's zone", `{"name":"a","budget_timezone":"Local"}`, nil, "", token.EInvalidBudgets},
		{"a zone that is not a string", `{"name":"a","budget_timezone":8}`, nil, "", token.EInvalidBudgets},
		{"malformed JSON is still invalid_json", `{"name":"a","budgets":{"day":1}`, nil, "", token.EInvalidJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := api.ParseCreate([]byte(tt.body), token.Rules{}, time.Unix(1_800_000_000, 0))
			if got := token.ErrorCode(err); got != tt.code {
				t.Fatalf("ParseCreate code = %q (%v), want %q", got, err, tt.code)
			}
			if err == nil && (!reflect.DeepEqual(s.Budgets, tt.wantB) || s.BudgetTimezone != tt.wantZone) {
				t.Errorf("budgets %v zone %q, want %v %q", s.Budgets, s.BudgetTimezone, tt.wantB, tt.wantZone)
			}
		})
	}
}

func TestParseUpdateBudgets(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		statusOnly bool
		wantB      *token.Budgets
		wantZone   *string
		code       string
	}{
		{"absent", `{"id":1,"name":"x"}`, false, nil, nil, ""},
		{"empty object changes nothing", `{"id":1,"budgets":{}}`, false, nil, nil, ""},
		{"null changes nothing", `{"id":1,"budgets":null,"budget_timezone":null}`, false, nil, nil, ""},
		{"zero removes, kept in the patch", `{"id":1,"budgets":{"minute":0,"day":7}}`, false, &token.Budgets{"minute": 0, "day": 7}, nil, ""},
		{"a zone", `{"id":1,"budget_timezone":"Europe/Paris"}`, false, nil, ptr("Europe/Paris"), ""},
		{"back to the default zone", `{"id":1,"budget_timezone":""}`, false, nil, ptr(""), ""},
		{"a string limit", `{"id":1,"budgets":{"day":"7"}}`, false, nil, nil, token.EInvalidBudgets},
		{"unknown period", `{"id":1,"budgets":{"quarter":7}}`, false, nil, nil, token.EInvalidBudgets},
		{"unknown zone", `{"id":1,"budget_timezone":"Nowhere"}`, false, nil, nil, token.EInvalidBudgets},
		{"status only ignores them", `{"id":1,"status":2,"budgets":"bad","budget_timezone":5}`, true, nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, p, err := api.ParseUpdate([]byte(tt.body), tt.statusOnly, token.Rules{}, time.Unix(1_800_000_000, 0))
			if got := token.ErrorCode(err); got != tt.code {
				t.Fatalf("ParseUpdate code = %q (%v), want %q", got, err, tt.code)
			}
			if err == nil && (!reflect.DeepEqual(p.Budgets, tt.wantB) || !reflect.DeepEqual(p.BudgetTimezone, tt.wantZone)) {
				t.Errorf("patch budgets %v zone %v, want %v %v", p.Budgets, p.BudgetTimezone, tt.wantB, tt.wantZone)
			}
		})
	}
}

// budgetServer is newServer with the deployment's default zone set, and
// the usage endpoint.
func budgetServer(store *memstore.Store, clock api.Clock, zone *time.Location) (server, func(t *testing.T, key string) api.TokenUsage) {
	r := token.Rules{AllowedGroups: []string{"default"}}
	z := api.BudgetZone(zone)
	s := server{
		"list-tokens":   api.LambdaHandler(api.ListTokens(store, clock, z)),
		"search-tokens": api.LambdaHandler(api.SearchTokens(store, clock, z)),
		"get-token":     api.LambdaHandler(api.GetToken(store, clock, z)),
		"create-token":  api.LambdaHandler(api.CreateTokens(store, r, clock, z)),
		"update-token":  api.LambdaHandler(api.UpdateToken(store, r, clock, z)),
	}
	usage := api.LambdaHandler(api.UsageToken(store, clock, z))
	return s, func(t *testing.T, key string) api.TokenUsage {
		t.Helper()
		out, err := usage(context.Background(), events.APIGatewayV2HTTPRequest{
			RawPath: "/api/usage/token", Headers: map[string]string{"authorization": "Bearer " + key},
			RequestContext: events.APIGatewayV2HTTPRequestContext{HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "GET", Path: "/api/usage/token"}},
		})
		if err != nil || out.StatusCode != 200 {
			t.Fatalf("usage: %d %v: %s", out.StatusCode, err, out.Body)
		}
		var body api.UsageResponse
		if err := json.Unmarshal([]byte(out.Body), &body); err != nil || body.Data == nil {
			t.Fatalf("usage body: %v: %s", err, out.Body)
		}
		return *body.Data
	}
}

// TestBudgetsThroughTheAPI follows one token's spend windows through every
// read and the partial-update rules, at a fixed clock, with the deployment's
// default zone America/New_York. Charges are written behind the store, as
// verify leaves them.
func TestBudgetsThroughTheAPI(t *testing.T) {
	ny, err := token.LoadZone("America/New_York", "")
	if err != nil {
		t.Fatal(err)
	}
	// 2027-03-10 15:30:20 UTC: 10:30:20 in New York (EST), 23:30:20 in Shanghai.
	clock := time.Date(2027, 3, 10, 15, 30, 20, 0, time.UTC)
	nyToday := time.Date(2027, 3, 10, 0, 0, 0, 0, ny).Unix()
	nyTomorrow := time.Date(2027, 3, 11, 0, 0, 0, 0, ny).Unix()
	shTomorrow := time.Date(2027, 3, 10, 16, 0, 0, 0, time.UTC).Unix() // 2027-03-11 00:00 in Shanghai
	minute := time.Date(2027, 3, 10, 15, 30, 0, 0, time.UTC).Unix()

	store := MustStore(t)
	s, usage := budgetServer(store, func() time.Time { return clock }, ny)
	created := s.create(t, "u1", `{"name":"windows","unlimited_quota":true,"budgets":{"day":100000,"minute":5000}}`)
	tid := id(created)
	wantFields(t, "create", created, token.Budgets{"day": 100000, "minute": 5000}, "", usages{
		"day":    {Limit: 100000, Used: 0, ResetsAt: nyTomorrow},
		"minute": {Limit: 5000, Used: 0, ResetsAt: minute + 60},
	})

	// Charged: 1234 today; the minute window full, but it was the last minute's.
	setWindows(t, store, created.ID, map[token.Period]token.BudgetWindow{
		"day": {Start: nyToday, Used: 1234}, "minute": {Start: minute - 60, Used: 5000}})
	charged := usages{
		"day":    {Limit: 100000, Used: 1234, ResetsAt: nyTomorrow},
		"minute": {Limit: 5000, Used: 0, ResetsAt: minute + 60},
	}
	var got api.Token
	s.call(t, "get-token", asUser("u1"), withID(tid)).data(t, &got)
	wantFields(t, "get", got, token.Budgets{"day": 100000, "minute": 5000}, "", charged)
	wantFields(t, "list", s.list(t, "u1").Items[0], token.Budgets{"day": 100000, "minute": 5000}, "", charged)
	var found []api.Token
	s.call(t, "search-tokens", asUser("u1"), withQuery("keyword=wind")).data(t, &found)
	if len(found) != 1 {
		t.Fatalf("search found %d tokens, want 1", len(found))
	}
	wantFields(t, "search", found[0], token.Budgets{"day": 100000, "minute": 5000}, "", charged)
	if u := usage(t, created.Key); !reflect.DeepEqual(u.BudgetUsage, charged) {
		t.Errorf("usage by key budget_usage = %v, want %v", u.BudgetUsage, charged)
	}

	steps := []struct {
		name     string
		body     string
		wantB    token.Budgets
		wantZone string
		want     usages
	}{
		{"a new limit keeps used", `{"budgets":{"day":200000}}`, token.Budgets{"day": 200000, "minute": 5000}, "", usages{
			"day":    {Limit: 200000, Used: 1234, ResetsAt: nyTomorrow},
			"minute": {Limit: 5000, Used: 0, ResetsAt: minute + 60},
		}},
		{"{} changes nothing", `{"budgets":{}}`, token.Budgets{"day": 200000, "minute": 5000}, "", usages{
			"day":    {Limit: 200000, Used: 1234, ResetsAt: nyTomorrow},
			"minute": {Limit: 5000, Used: 0, ResetsAt: minute + 60},
		}},
		{"0 removes the window", `{"budgets":{"minute":0}}`, token.Budgets{"day": 200000}, "", usages{
			"day": {Limit: 200000, Used: 1234, ResetsAt: nyTomorrow},
		}},
		{"other fields leave the windows alone", `{"name":"renamed","remain_quota":5}`, token.Budgets{"day": 200000}, "", usages{
			"day": {Limit: 200000, Used: 1234, ResetsAt: nyTomorrow},
		}},
		{"a new zone starts the windows afresh", `{"budget_timezone":"Asia/Shanghai"}`, token.Budgets{"day": 200000}, "Asia/Shanghai", usages{
			"day": {Limit: 200000, Used: 0, ResetsAt: shTomorrow},
		}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			r := s.call(t, "update-token", asUser("u1"), withBody(`{"id":`+tid+`,`+st.body[1:]))
			r.want(t, 200, "")
			var updated api.Token
			r.data(t, &updated)
			wantFields(t, "update", updated, st.wantB, st.wantZone, st.want)
			var read api.Token
			s.call(t, "get-token", asUser("u1"), withID(tid)).data(t, &read)
			wantFields(t, "get after update", read, st.wantB, st.wantZone, st.want)
		})
	}
	stored, err := store.Get(context.Background(), "u1", created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Windows != nil {
		t.Errorf("stored windows after a zone change = %v, want none", stored.Windows)
	}
}

// TestBudgetsSameZoneKeepsWindows: sending the stored zone again (a
// client that sends the whole token back) is no change of zone.
func TestBudgetsSameZoneKeepsWindows(t *testing.T) {
	clock := time.Date(2027, 3, 10, 15, 30, 20, 0, time.UTC)
	store := MustStore(t)
	s, _ := budgetServer(store, func() time.Time { return clock }, nil)
	created := s.create(t, "u1", `{"name":"w","budgets":{"day":10},"budget_timezone":"UTC","remain_quota":5}`)
	today := time.Date(2027, 3, 10, 0, 0, 0, 0, time.UTC).Unix()
	setWindows(t, store, created.ID, map[token.Period]token.BudgetWindow{"day": {Start: today, Used: 7}})
	r := s.call(t, "update-token", asUser("u1"), withBody(`{"id":`+id(created)+`,"budget_timezone":"UTC","budgets":{"day":10}}`))
	r.want(t, 200, "")
	var got api.Token
	r.data(t, &got)
	wantFields(t, "update", got, token.Budgets{"day": 10}, "UTC", usages{"day": {Limit: 10, Used: 7, ResetsAt: today + 86400}})
}

func TestInvalidBudgetsChangeNothing(t *testing.T) {
	clock := time.Date(2027, 3, 10, 15, 30, 20, 0, time.UTC)
	store := MustStore(t)
	s, _ := budgetServer(store, func() time.Time { return clock }, nil)
	created := s.create(t, "u1", `{"name":"w","budgets":{"day":10}}`)
	bad := []struct{ name, budgets string }{
		{"unknown period", `"budgets":{"year":1}`},
		{"negative", `"budgets":{"day":-1}`},
		{"over 5e14", `"budgets":{"day":500000000000001}`},
		{"a float", `"budgets":{"day":2.5}`},
		{"a string", `"budgets":{"day":"2"}`},
		{"not an object", `"budgets":["day"]`},
		{"unknown zone", `"budget_timezone":"Atlantis/Capital"`},
		{"the machine's zone", `"budget_timezone":"Local"`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			r := s.call(t, "create-token", asUser("u1"), english(), withBody(`{"name":"x",`+tt.budgets+`}`))
			r.want(t, 400, token.EInvalidBudgets)
			if r.Env.Message == "" {
				t.Error("no message")
			}
			r = s.call(t, "update-token", asUser("u1"), withBody(`{"id":`+id(created)+`,"name":"changed",`+tt.budgets+`}`))
			r.want(t, 400, token.EInvalidBudgets)
		})
	}
	page := s.list(t, "u1")
	if page.Total != 1 || page.Items[0].Name != "w" || !reflect.DeepEqual(page.Items[0].Budgets, token.Budgets{"day": 10}) {
		t.Errorf("after refused requests: total %d, token %+v; want the one token as created", page.Total, page.Items[0])
	}
}

// wantFields checks a response token's spend-window fields.
func wantFields(t *testing.T, what string, got api.Token, budgets token.Budgets, zone string, usage usages) {
	t.Helper()
	if !reflect.DeepEqual(got.Budgets, budgets) || got.BudgetTimezone != zone || !reflect.DeepEqual(got.BudgetUsage, usage) {
		t.Errorf("%s: budgets %v, budget_timezone %q, budget_usage %v;\nwant %v, %q, %v",
			what, got.Budgets, got.BudgetTimezone, got.BudgetUsage, budgets, zone, usage)
	}
}

// setWindows writes a token's window state behind the store, as verify's
// charges leave it.
func setWindows(t *testing.T, store *memstore.Store, id int64, w map[token.Period]token.BudgetWindow) {
	t.Helper()
	if err := store.Edit("u1", id, func(tok *token.Token) { tok.Windows = w }); err != nil {
		t.Fatal(err)
	}
}

// The response's JSON names, as the console and the contract read them.
func TestBudgetJSONNames(t *testing.T) {
	tok := api.NewToken(token.Token{ID: 1, Budgets: token.Budgets{"day": 5}, BudgetTimezone: "UTC",
		Windows: map[token.Period]token.BudgetWindow{"day": {Start: 0, Used: 3}}},
		time.Unix(86400*3+10, 0), nil, false)
	b, err := json.Marshal(tok)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"budgets":         `{"day":5}`,
		"budget_timezone": `"UTC"`,
		"budget_usage":    `{"day":{"limit":5,"used":0,"resets_at":` + strconv.Itoa(86400*4) + `}}`,
	}
	for k, v := range want {
		if string(m[k]) != v {
			t.Errorf("%s = %s, want %s", k, m[k], v)
		}
	}
	none, _ := json.Marshal(api.NewToken(token.Token{ID: 2}, time.Unix(0, 0), nil, false))
	if err := json.Unmarshal(none, &m); err != nil {
		t.Fatal(err)
	}
	if string(m["budgets"]) != "{}" || string(m["budget_usage"]) != "{}" || string(m["budget_timezone"]) != `""` {
		t.Errorf("a token without windows: budgets %s budget_usage %s budget_timezone %s, want {} {} \"\"", m["budgets"], m["budget_usage"], m["budget_timezone"])
	}
}
