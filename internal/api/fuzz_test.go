package api_test

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/llmgw/token-service/internal/api"
	"github.com/llmgw/token-service/internal/token"
)

// checkRefusal fails unless err is nil or a 4xx with a catalog code: bad
// input is never a 5xx.
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	code := token.ErrorCode(err)
	if s := api.StatusOf(code); s < 400 || s >= 500 {
		t.Fatalf("input refused with %q (%d): %v", code, s, err)
	}
}

func FuzzParseCreate(f *testing.F) {
	for _, s := range []string{
		`{"name":"My API Token","expired_time":1640995200,"remain_quota":1000000,"unlimited_quota":false,"model_limits_enabled":true,"model_limits":["gpt-3.5-turbo","gpt-4"],"allow_ips":"192.168.1.1,10.0.0.1","group":"default"}`,
		`{"name":"a","count":3,"model_limits":"a,b","allow_ips":["::1","10.0.0.0/8"]}`,
		`{"name":"` + strings.Repeat("令", 31) + `"}`,
		`{"name":null,"count":null,"expired_time":null}`,
		`{"name":"a","remain_quota":1e99}`,
		`{"name":"a"}garbage`,
		`[]`, `null`, ``, `{`, `"\ud800"`,
		"{\"name\":\"a\xff\xfe\"}", `{"name":"\ud800"}`, `{"name":"\udc00x"}`, `{"name":"\\ud800"}`,
		`{"name":"\ud83d\ude00"}`, `{"name":"\ud83d\\ude00"}`, `{"name":"\u202egnp.exe"}`, `{"name":"\u200b\u200b"}`,
		`{"name":"a","model_limits":["gpt-4o*","*","g*pt"]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := api.ParseCreate(body, rules, now)
		checkRefusal(t, err)
		if err == nil && (s.Count < 1 || s.Count > token.MaxCount) {
			t.Fatalf("accepted count %d", s.Count)
		}
		if !utf8.Valid(body) && token.ErrorCode(err) != token.EInvalidJSON {
			t.Fatalf("a body of invalid UTF-8 answered %v, want %s", err, token.EInvalidJSON)
		}
		// Nothing is rewritten: a U+FFFD in the name was sent as one.
		if err == nil && strings.ContainsRune(s.Name, utf8.RuneError) &&
			!bytes.Contains(body, []byte("\uFFFD")) && !bytes.Contains(bytes.ToLower(body), []byte(`\ufffd`)) {
			t.Fatalf("name %q holds a U+FFFD the body %q did not send", s.Name, body)
		}
	})
}

func FuzzParseUpdate(f *testing.F) {
	for _, s := range []string{
		`{"id":7,"name":"x"}`,
		`{"id":123,"status":1}`,
		`{"id":"abc"}`, `{"id":0}`, `{"id":-1}`, `{"id":1.5}`, `{"id":1e2}`,
		`{"id":1,"model_limits":"a,b","allow_ips":"1.2.3.4\n::1"}`,
		`{"id":1,"status":3}`, `{}`, `null`, ``,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, statusOnly bool) {
		id, p, err := api.ParseUpdate(body, statusOnly, rules, now)
		checkRefusal(t, err)
		if err == nil && id <= 0 {
			t.Fatalf("accepted id %d", id)
		}
		if err == nil && statusOnly && (p.Status == nil || p.Name != nil) {
			t.Fatalf("status_only patch %+v", p)
		}
	})
}

func FuzzParseBatch(f *testing.F) {
	for _, s := range []string{
		`{"ids":[1,2,3,4,5]}`, `{"ids":[]}`, `{"ids":[0]}`, `{"ids":["1"]}`, `{"ids":[1.0]}`,
		`{"ids":null}`, `{"ids":{"a":1}}`, `{}`, ``, `{"ids":[1,1,1]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ids, err := api.ParseBatch(body)
		checkRefusal(t, err)
		if err == nil && (len(ids) == 0 || len(ids) > token.MaxBatchIDs) {
			t.Fatalf("accepted %d ids", len(ids))
		}
		for _, id := range ids {
			if id <= 0 {
				t.Fatalf("accepted id %d", id)
			}
		}
	})
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"p=1&size=20", "p=abc&page_size=-1", "size=1000000000000000000000", "keyword=api&token=sk-123",
		"p=%zz", "", "keyword=%E4%BB%A4&token=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, _ := url.ParseQuery(raw)
		page, size := api.ParsePage(q)
		if page < 1 || page > api.MaxPage || size < 1 || size > api.MaxPageSize {
			t.Fatalf("ParsePage(%q) = %d, %d", raw, page, size)
		}
		_ = api.ParseSearch(q)
		r := &http.Request{Header: http.Header{"Accept-Language": {raw}}}
		_ = api.RequestLang(r)
	})
}

func FuzzPathID(f *testing.F) {
	for _, s := range []string{"1", "0", "-1", "abc", "1.5", "99999999999999999999", "", "1/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, seg string) {
		r := &http.Request{URL: &url.URL{Path: "/api/token/" + seg}}
		id, err := api.PathID(r)
		checkRefusal(t, err)
		if err == nil && id <= 0 {
			t.Fatalf("PathID(%q) = %d", seg, id)
		}
	})
}

func FuzzParseRotate(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `{"grace_seconds":0}`, `{"grace_seconds":60}`, `{"grace_seconds":604800}`,
		`{"grace_seconds":604801}`, `{"grace_seconds":-1}`, `{"grace_seconds":"60"}`, `{"grace_seconds":1.5}`,
		`{"grace_seconds":1e3}`, `{"grace_seconds":null}`, `{"grace_seconds":99999999999999999999}`, `[]`, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		grace, err := api.ParseRotate(body)
		checkRefusal(t, err)
		if err == nil && (grace < 0 || grace > token.MaxGraceSeconds*time.Second) {
			t.Fatalf("accepted grace %v", grace)
		}
	})
}
