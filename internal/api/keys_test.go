package api_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmgw/token-service/internal/api"
	"github.com/llmgw/token-service/internal/token"
)

// keyServer is newServer plus the reveal and rotate functions, the reveal
// limit set to limit, at a fixed clock 5 s into a minute.
func keyServer(t *testing.T, limit int) server {
	t.Helper()
	store := MustStore(t)
	clock := func() time.Time { return time.Unix(1_800_000_005, 0) }
	s := newServer(store, clock)
	s["reveal-token-key"] = api.LambdaHandler(api.RevealKey(store, limit, clock))
	s["reveal-token-keys"] = api.LambdaHandler(api.RevealKeys(store, limit, clock))
	s["rotate-token"] = api.LambdaHandler(api.RotateToken(store, clock))
	return s
}

const createBody = `{"name":"k","remain_quota":500,"expired_time":-1}`

func TestRevealKey(t *testing.T) {
	s := keyServer(t, 100)
	tok := s.create(t, "u1", createBody)
	disabled := s.create(t, "u1", createBody)
	s.call(t, "update-token", asUser("u1"), withBody(`{"id":`+id(disabled)+`,"status":2}`)).want(t, 200, "")

	for _, tt := range []struct {
		name string
		tok  api.Token
	}{{"enabled", tok}, {"disabled", disabled}} {
		r := s.call(t, "reveal-token-key", asUser("u1"), withID(id(tt.tok)))
		r.want(t, 200, "")
		var got api.RevealedKey
		r.data(t, &got)
		if got.Key != tt.tok.Key {
			t.Errorf("%s: revealed %q, want the created key", tt.name, got.Key)
		}
		if cc := r.Headers["Cache-Control"]; cc != "no-store" {
			t.Errorf("%s: Cache-Control = %q, want no-store", tt.name, cc)
		}
	}
	tests := []struct {
		name   string
		opts   []option
		status int
		code   string
	}{
		{"another user's token", []option{asUser("u2"), withID(id(tok))}, 404, token.ENotFound},
		{"unknown id", []option{asUser("u1"), withID("999")}, 404, token.ENotFound},
		{"bad id", []option{asUser("u1"), withID("abc")}, 400, token.EInvalidID},
		{"zero id", []option{asUser("u1"), withID("0")}, 400, token.EInvalidID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.call(t, "reveal-token-key", tt.opts...)
			r.want(t, tt.status, tt.code)
			if fullKey.MatchString(r.Body) {
				t.Errorf("a refused reveal shows a key: %s", r.Body)
			}
		})
	}
}

func TestRevealKeys(t *testing.T) {
	s := keyServer(t, 100)
	a := s.create(t, "u1", createBody)
	b := s.create(t, "u1", createBody)
	other := s.create(t, "u2", createBody)

	r := s.call(t, "reveal-token-keys", asUser("u1"),
		withBody(`{"ids":[`+id(a)+`,`+id(other)+`,`+id(b)+`,`+id(a)+`,424242]}`))
	r.want(t, 200, "")
	var got api.RevealedKeys
	r.data(t, &got)
	want := map[string]string{id(a): a.Key, id(b): b.Key}
	if len(got.Keys) != len(want) || got.Keys[id(a)] != a.Key || got.Keys[id(b)] != b.Key {
		t.Errorf("keys = %v, want %v (another user's and unknown ids left out)", got.Keys, want)
	}
	if cc := r.Headers["Cache-Control"]; cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	// other is u2's own (same id as a may be): u1's reveal must not show it.
	if strings.Contains(r.Body, other.Key) {
		t.Error("batch reveal shows another user's key")
	}

	many := make([]string, 101)
	for i := range many {
		many[i] = strconv.Itoa(i + 1)
	}
	for _, tt := range []struct{ name, body, code string }{
		{"empty ids", `{"ids":[]}`, token.EInvalidRequest},
		{"no ids", `{}`, token.EInvalidRequest},
		{"101 ids", `{"ids":[` + strings.Join(many, ",") + `]}`, token.EInvalidRequest},
		{"a zero id", `{"ids":[1,0]}`, token.EInvalidRequest},
		{"a string id", `{"ids":["x"]}`, token.EInvalidRequest},
		{"not JSON", `{"ids":`, token.EInvalidJSON},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s.call(t, "reveal-token-keys", asUser("u1"), withBody(tt.body)).want(t, 400, tt.code)
		})
	}
}

func TestRevealLimit(t *testing.T) {
	s := keyServer(t, 2)
	tok := s.create(t, "u1", createBody)
	s.call(t, "reveal-token-key", asUser("u1"), withID(id(tok))).want(t, 200, "")
	s.call(t, "reveal-token-keys", asUser("u1"), withBody(`{"ids":[`+id(tok)+`]}`)).want(t, 200, "")
	for _, name := range []string{"reveal-token-key", "reveal-token-keys"} {
		r := s.call(t, name, asUser("u1"), withID(id(tok)), withBody(`{"ids":[`+id(tok)+`]}`))
		r.want(t, 429, token.ERateLimited)
		if ra := r.Headers["Retry-After"]; ra != "55" {
			t.Errorf("%s: Retry-After = %q, want 55 (seconds to the next minute)", name, ra)
		}
		if fullKey.MatchString(r.Body) {
			t.Errorf("%s: a refused reveal shows a key", name)
		}
	}
	// The limit is per user.
	other := s.create(t, "u2", createBody)
	s.call(t, "reveal-token-key", asUser("u2"), withID(id(other))).want(t, 200, "")
}

func TestRevealAuditLine(t *testing.T) {
	var buf bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })

	s := keyServer(t, 100)
	tok := s.create(t, "u1", createBody)
	buf.Reset()
	s.call(t, "reveal-token-keys", asUser("u1"), withBody(`{"ids":[`+id(tok)+`]}`)).want(t, 200, "")
	var audits []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		if m["event"] == "key_revealed" {
			audits = append(audits, m)
		}
	}
	if len(audits) != 1 {
		t.Fatalf("%d key_revealed lines, want 1: %s", len(audits), buf.String())
	}
	a := audits[0]
	if a["user_id"] != "u1" || a["request_id"] == "" || a["request_id"] == nil {
		t.Errorf("audit line %v: want user_id u1 and the request id", a)
	}
	if ids, _ := a["token_ids"].([]any); len(ids) != 1 || ids[0] != float64(tok.ID) {
		t.Errorf("audit token_ids = %v, want [%d]", a["token_ids"], tok.ID)
	}
	if strings.Contains(buf.String(), tok.Key) || fullKey.MatchString(buf.String()) {
		t.Error("a log line holds the full key")
	}
}

func TestRotateToken(t *testing.T) {
	s := keyServer(t, 100)
	tok := s.create(t, "u1", createBody)

	for _, tt := range []struct{ name, body, code string }{
		{"negative", `{"grace_seconds":-1}`, token.EInvalidGrace},
		{"over 7 days", `{"grace_seconds":604801}`, token.EInvalidGrace},
		{"fraction", `{"grace_seconds":1.5}`, token.EInvalidGrace},
		{"string", `{"grace_seconds":"60"}`, token.EInvalidGrace},
		{"huge", `{"grace_seconds":1e30}`, token.EInvalidGrace},
		{"not JSON", `{"grace_seconds":`, token.EInvalidJSON},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := s.call(t, "rotate-token", asUser("u1"), withID(id(tok)), withBody(tt.body), english())
			r.want(t, 400, tt.code)
			if tt.code == token.EInvalidGrace && !strings.Contains(r.Env.Message, "grace_seconds") {
				t.Errorf("message %q, want the English one", r.Env.Message)
			}
		})
	}
	s.call(t, "rotate-token", asUser("u2"), withID(id(tok)), withBody(`{}`)).want(t, 404, token.ENotFound)

	for _, body := range []string{"", `{}`, `{"grace_seconds":null}`, `{"grace_seconds":0}`, `{"grace_seconds":604800}`} {
		r := s.call(t, "rotate-token", asUser("u1"), withID(id(tok)), withBody(body))
		r.want(t, 200, "")
		var got api.Token
		r.data(t, &got)
		if got.ID != tok.ID || got.Key == tok.Key || !fullKey.MatchString(got.Key) || got.Name != tok.Name ||
			got.RemainQuota != tok.RemainQuota || got.Status != tok.Status {
			t.Errorf("body %q: rotated %+v, want token %d with a new full key and the same fields", body, got, tok.ID)
		}
		if cc := r.Headers["Cache-Control"]; cc != "no-store" {
			t.Errorf("Cache-Control = %q, want no-store", cc)
		}
		tok.Key = got.Key
	}
	// The get shows the new key's mask.
	r := s.call(t, "get-token", asUser("u1"), withID(id(tok)))
	var read api.Token
	r.data(t, &read)
	if read.Key != token.MaskKey(tok.Key) {
		t.Errorf("get after rotate: key %q, want the new key's mask", read.Key)
	}
}

// TestConcurrentRotations: rotations of one token at once without grace all
// answer 200 (requests never fail because of each other; that none rotates
// away a key another was given is the store's
// TestConcurrentRotationsWithoutGrace), and the stored key is one of the
// keys they returned.
func TestConcurrentRotations(t *testing.T) {
	const n = 8
	s := keyServer(t, 100)
	tok := s.create(t, "u1", createBody)
	rs := make([]response, n)
	var wg sync.WaitGroup
	for i := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs[i] = s.call(t, "rotate-token", asUser("u1"), withID(id(tok)), withBody(`{"grace_seconds":0}`), english())
		}()
	}
	wg.Wait()
	keys := map[string]bool{}
	for i, r := range rs {
		if r.Status != 200 || !r.Env.Success {
			t.Errorf("rotation %d: %d %s, want 200", i, r.Status, r.Body)
			continue
		}
		var got api.Token
		r.data(t, &got)
		keys[got.Key] = true
	}
	r := s.call(t, "reveal-token-key", asUser("u1"), withID(id(tok)))
	r.want(t, 200, "")
	var got api.RevealedKey
	r.data(t, &got)
	if !keys[got.Key] {
		t.Errorf("the stored key is none of the keys the 200 rotations returned")
	}
}

func TestParseRotate(t *testing.T) {
	tests := []struct {
		body string
		want time.Duration
		code string
	}{
		{"", 0, ""},
		{`{"grace_seconds":60}`, time.Minute, ""},
		{`{"grace_seconds":60,"other":1}`, time.Minute, ""},
		{`{"grace_seconds":true}`, 0, token.EInvalidGrace},
		{`[]`, 0, token.EInvalidJSON},
	}
	for _, tt := range tests {
		got, err := api.ParseRotate([]byte(tt.body))
		if got != tt.want || token.ErrorCode(err) != tt.code {
			t.Errorf("ParseRotate(%q) = %v, %v; want %v, %q", tt.body, got, err, tt.want, tt.code)
		}
	}
}
