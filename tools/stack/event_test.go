package stack_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/llmgw/token-service/tools/stack"
	"github.com/llmgw/token-service/tools/template"
)

func TestBuildEvent(t *testing.T) {
	r := httptest.NewRequest("POST", "http://127.0.0.1:3000/api/token/42/?a=1&a=2&q=x%20y", strings.NewReader(`{"name":"x"}`))
	r.RemoteAddr = "192.0.2.7:5555"
	r.Header.Set("Content-Type", "application/json")
	r.Header.Add("X-Dup", "one")
	r.Header.Add("X-Dup", "two")
	r.Header.Set("User-Agent", "test-agent")
	r.Header.Set("Cookie", "a=1; b=2")
	now := time.Date(2026, 3, 12, 19, 3, 58, 0, time.UTC)
	req := &stack.Request{
		HTTP: r, Body: []byte(`{"name":"x"}`),
		Route:      template.Route{Function: "F", Method: "POST", Path: "/api/token/{id}", Authorizer: "A"},
		PathParams: map[string]string{"id": "42"},
		RequestID:  "JfHKjhfgHAMEJxA=",
		Time:       now,
	}
	ev := stack.BuildEvent(req, map[string]any{"userId": "7"})

	checks := []struct {
		name      string
		got, want any
	}{
		{"version", ev.Version, "2.0"},
		{"routeKey", ev.RouteKey, "POST /api/token/{id}"},
		{"rawPath", ev.RawPath, "/api/token/42/"},
		{"rawQueryString", ev.RawQueryString, "a=1&a=2&q=x%20y"},
		{"query a", ev.QueryStringParameters["a"], "1,2"},
		{"query q", ev.QueryStringParameters["q"], "x y"},
		{"path id", ev.PathParameters["id"], "42"},
		{"dup header", ev.Headers["x-dup"], "one,two"},
		{"content-type", ev.Headers["content-type"], "application/json"},
		{"host", ev.Headers["host"], "127.0.0.1:3000"},
		{"no cookie header", ev.Headers["cookie"], ""},
		{"cookies", strings.Join(ev.Cookies, "|"), "a=1|b=2"},
		{"body", ev.Body, `{"name":"x"}`},
		{"base64", ev.IsBase64Encoded, false},
		{"accountId", ev.RequestContext.AccountID, template.AccountID},
		{"apiId", ev.RequestContext.APIID, template.APIID},
		{"domainName", ev.RequestContext.DomainName, "127.0.0.1"},
		{"stage", ev.RequestContext.Stage, "$default"},
		{"requestId", ev.RequestContext.RequestID, "JfHKjhfgHAMEJxA="},
		{"ctx routeKey", ev.RequestContext.RouteKey, "POST /api/token/{id}"},
		{"time", ev.RequestContext.Time, "12/Mar/2026:19:03:58 +0000"},
		{"timeEpoch", ev.RequestContext.TimeEpoch, now.UnixMilli()},
		{"method", ev.RequestContext.HTTP.Method, "POST"},
		{"http path", ev.RequestContext.HTTP.Path, "/api/token/42/"},
		{"protocol", ev.RequestContext.HTTP.Protocol, "HTTP/1.1"},
		{"sourceIp", ev.RequestContext.HTTP.SourceIP, "192.0.2.7"},
		{"userAgent", ev.RequestContext.HTTP.UserAgent, "test-agent"},
		{"authorizer", ev.RequestContext.Authorizer.Lambda["userId"], "7"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}

	b, err := stack.MarshalEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("authentication")) {
		t.Errorf("event carries an empty authentication block: %s", b)
	}
	var back events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(b, &back); err != nil || back.RouteKey != ev.RouteKey {
		t.Errorf("round trip: %v, routeKey %q", err, back.RouteKey)
	}
}

func TestBuildEventBodies(t *testing.T) {
	tests := []struct {
		name, contentType string
		body              []byte
		wantBody          string
		wantBase64        bool
	}{
		{"json", "application/json; charset=utf-8", []byte(`{"a":1}`), `{"a":1}`, false},
		{"text", "text/plain", []byte("héllo"), "héllo", false},
		{"no content type", "", []byte("plain"), "plain", false},
		{"binary type", "application/octet-stream", []byte("abc"), "YWJj", true},
		{"invalid utf-8", "text/plain", []byte{0xff, 0xfe}, "//4=", true},
		{"empty", "application/json", nil, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/items", bytes.NewReader(tt.body))
			if tt.contentType != "" {
				r.Header.Set("Content-Type", tt.contentType)
			}
			ev := stack.BuildEvent(&stack.Request{HTTP: r, Body: tt.body, Route: template.Route{Method: "POST", Path: "/items"}}, nil)
			if ev.Body != tt.wantBody || ev.IsBase64Encoded != tt.wantBase64 {
				t.Errorf("body %q base64 %v, want %q %v", ev.Body, ev.IsBase64Encoded, tt.wantBody, tt.wantBase64)
			}
			if ev.RequestContext.Authorizer != nil {
				t.Errorf("route without authorizer got authorizer %v", ev.RequestContext.Authorizer)
			}
			if ev.QueryStringParameters != nil || ev.PathParameters != nil {
				t.Errorf("want no query/path parameters, got %v %v", ev.QueryStringParameters, ev.PathParameters)
			}
		})
	}
}

func TestMapResponse(t *testing.T) {
	tests := []struct {
		name       string
		payload    string
		wantErr    bool
		wantStatus int
		wantHeader http.Header
		wantBody   string
	}{
		{
			name:       "structured",
			payload:    `{"statusCode":201,"headers":{"content-type":"application/json","x-a":"1"},"body":"{\"ok\":true}"}`,
			wantStatus: 201, wantHeader: http.Header{"Content-Type": {"application/json"}, "X-A": {"1"}}, wantBody: `{"ok":true}`,
		},
		{
			name:       "multi value headers and cookies",
			payload:    `{"statusCode":200,"headers":{"X-M":"single"},"multiValueHeaders":{"X-M":["1","2"]},"cookies":["a=1","b=2; HttpOnly"],"body":""}`,
			wantStatus: 200, wantHeader: http.Header{"X-M": {"1", "2"}, "Set-Cookie": {"a=1", "b=2; HttpOnly"}},
		},
		{
			name:       "base64 body",
			payload:    `{"statusCode":200,"body":"AAEC","isBase64Encoded":true}`,
			wantStatus: 200, wantHeader: http.Header{}, wantBody: "\x00\x01\x02",
		},
		{
			name:       "no statusCode: JSON body of a 200",
			payload:    `{"hello":"world"}`,
			wantStatus: 200, wantHeader: http.Header{"Content-Type": {"application/json"}}, wantBody: `{"hello":"world"}`,
		},
		{
			name:       "JSON string",
			payload:    `"hi"`,
			wantStatus: 200, wantHeader: http.Header{"Content-Type": {"application/json"}}, wantBody: "hi",
		},
		{name: "not JSON", payload: `oops`, wantErr: true},
		{name: "bad base64", payload: `{"statusCode":200,"body":"***","isBase64Encoded":true}`, wantErr: true},
		{name: "bad status", payload: `{"statusCode":42}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := stack.MapResponse([]byte(tt.payload))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("MapResponse = %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.wantStatus || string(got.Body) != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", got.Status, got.Body, tt.wantStatus, tt.wantBody)
			}
			if !maps.EqualFunc(got.Header, tt.wantHeader, slices.Equal) {
				t.Errorf("headers = %v, want %v", got.Header, tt.wantHeader)
			}
		})
	}
}
