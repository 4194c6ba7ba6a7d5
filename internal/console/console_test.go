package console_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/aws/aws-lambda-go/events"

	"github.com/llmgw/token-service/internal/api"
	"github.com/llmgw/token-service/internal/console"
	"github.com/llmgw/token-service/web"
)

// testFiles is a small tree with a secret beside it that no URL reaches.
func testFiles() fs.FS {
	return fstest.MapFS{
		"index.html":     {Data: []byte("<!doctype html><title>x</title>")},
		"app.js":         {Data: []byte("export const x = 1;\n")},
		"style.css":      {Data: []byte("body{}\n")},
		"icon.png":       {Data: []byte{0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff, 0xfe}},
		"sub/deep.js":    {Data: []byte("//deep\n")},
		"notes.md":       {Data: []byte("# not served\n")},
		"dir/.keep.json": {Data: []byte("{}")},
	}
}

func TestServe(t *testing.T) {
	h := console.New(testFiles())
	tests := []struct {
		name, method, path string
		wantStatus         int
		wantType           string
		wantCache          string
		wantBody           string // exact, when set
	}{
		{"index", "GET", "/", 200, "text/html; charset=utf-8", "no-cache", "<!doctype html><title>x</title>"},
		{"script", "GET", "/assets/app.js", 200, "text/javascript; charset=utf-8", console.AssetCacheControl, "export const x = 1;\n"},
		{"style", "GET", "/assets/style.css", 200, "text/css; charset=utf-8", console.AssetCacheControl, "body{}\n"},
		{"binary", "GET", "/assets/icon.png", 200, "image/png", console.AssetCacheControl, "\x89PNG\r\n\x1a\n\x00\xff\xfe"},
		{"nested", "GET", "/assets/sub/deep.js", 200, "text/javascript; charset=utf-8", console.AssetCacheControl, "//deep\n"},
		{"head", "HEAD", "/assets/app.js", 200, "text/javascript; charset=utf-8", console.AssetCacheControl, ""},
		{"unknown asset", "GET", "/assets/nope.js", 404, "text/plain; charset=utf-8", "no-store", ""},
		{"extension not served", "GET", "/assets/notes.md", 404, "text/plain; charset=utf-8", "no-store", ""},
		{"index under assets", "GET", "/assets/index.html", 404, "text/plain; charset=utf-8", "no-store", ""},
		{"directory", "GET", "/assets/sub", 404, "text/plain; charset=utf-8", "no-store", ""},
		{"directory slash", "GET", "/assets/sub/", 404, "text/plain; charset=utf-8", "no-store", ""},
		{"dot dot", "GET", "/assets/../index.html", 404, "text/plain; charset=utf-8", "no-store", ""},
		{"dot dot inside", "GET", "/assets/sub/../app.js", 404, "text/plain; charset=utf-8", "no-store", ""},
		{"dot segment", "GET", "/assets/./app.js", 404, "text/plain; charset=utf-8", "no-store", ""},
		{"double slash", "GET", "/assets//app.js", 404, "text/plain; charset=utf-8", "no-store", ""},
		{"backslash", "GET", `/assets/sub\deep.js`, 404, "text/plain; charset=utf-8", "no-store", ""},
		{"outside assets", "GET", "/app.js", 404, "text/plain; charset=utf-8", "no-store", ""},
		{"other method", "POST", "/", 405, "text/plain; charset=utf-8", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "http://x/", nil)
			req.URL.Path = tt.path // as decoded, without Go's cleaning
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			res := w.Result()
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d", res.StatusCode, tt.wantStatus)
			}
			if got := res.Header.Get("Content-Type"); got != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", got, tt.wantType)
			}
			if got := res.Header.Get("Cache-Control"); got != tt.wantCache {
				t.Errorf("Cache-Control = %q, want %q", got, tt.wantCache)
			}
			if got := res.Header.Get("Content-Security-Policy"); got != console.ContentSecurityPolicy {
				t.Errorf("Content-Security-Policy = %q", got)
			}
			if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
			}
			if tt.wantStatus == 200 && tt.method == "GET" && w.Body.String() != tt.wantBody {
				t.Errorf("body = %q, want %q", w.Body.String(), tt.wantBody)
			}
			if tt.method == "HEAD" && w.Body.Len() != 0 {
				t.Errorf("HEAD body has %d bytes", w.Body.Len())
			}
		})
	}
}

func TestCSPIsStrict(t *testing.T) {
	csp := console.ContentSecurityPolicy
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "connect-src 'self'", "object-src 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP lacks %q: %s", want, csp)
		}
	}
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "*", "http:", "https:"} {
		if strings.Contains(csp, bad) {
			t.Errorf("CSP allows %q: %s", bad, csp)
		}
	}
}

func TestETagRevalidates(t *testing.T) {
	h := console.New(testFiles())
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/assets/app.js", nil))
	etag := w.Result().Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	req := httptest.NewRequest("GET", "/assets/app.js", nil)
	req.Header.Set("If-None-Match", etag)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if got := w.Result().StatusCode; got != http.StatusNotModified {
		t.Errorf("status with If-None-Match = %d, want 304", got)
	}
}

// Through the Lambda adapter, as in AWS: text bodies stay text, binary ones
// are base64 and decode to the same bytes.
func TestThroughLambdaHandler(t *testing.T) {
	handle := api.LambdaHandler(console.New(testFiles()))
	tests := []struct {
		name, path string
		wantBase64 bool
		wantBody   []byte
	}{
		{"index is text", "/", false, []byte("<!doctype html><title>x</title>")},
		{"png is base64", "/assets/icon.png", true, []byte{0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff, 0xfe}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := events.APIGatewayV2HTTPRequest{
				Version: "2.0", RouteKey: "GET " + tt.path, RawPath: tt.path,
				Headers: map[string]string{"host": "example.com"},
				RequestContext: events.APIGatewayV2HTTPRequestContext{
					HTTP:       events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "GET", Path: tt.path},
					DomainName: "example.com", Stage: "$default",
				},
			}
			resp, err := handle(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 || resp.IsBase64Encoded != tt.wantBase64 {
				t.Fatalf("status %d base64 %v, want 200 and %v", resp.StatusCode, resp.IsBase64Encoded, tt.wantBase64)
			}
			body := []byte(resp.Body)
			if resp.IsBase64Encoded {
				if body, err = base64.StdEncoding.DecodeString(resp.Body); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(body, tt.wantBody) {
				t.Errorf("body = %q, want %q", body, tt.wantBody)
			}
		})
	}
}

// The embedded tree has the page and the files it names, each of a served type.
func TestEmbeddedConsole(t *testing.T) {
	h := console.New(web.Console())
	for _, p := range []string{"/", "/assets/app.js", "/assets/api.js", "/assets/i18n.js", "/assets/ip.js", "/assets/style.css", "/assets/icon.png"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", p, nil))
		if w.Code != 200 || w.Body.Len() == 0 {
			t.Errorf("GET %s = %d with %d bytes, want 200 with a body", p, w.Code, w.Body.Len())
		}
	}
	// No inline script or style in the page: the CSP would block them.
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	page := w.Body.String()
	for _, bad := range []string{"<script>", "<style", " style=", " onclick=", "javascript:"} {
		if strings.Contains(page, bad) {
			t.Errorf("index.html contains %q", bad)
		}
	}
}
