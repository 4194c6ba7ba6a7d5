package api_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/llmgw/token-service/internal/api"
	tok "github.com/llmgw/token-service/internal/token"
)

// domainCodes returns every error code constant (E...) declared in the token
// package's source, so a code added there without a message fails here.
func domainCodes(t *testing.T) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir("../token")
	if err != nil {
		t.Fatalf("read token package: %v", err)
	}
	var files []*ast.File
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join("../token", e.Name()), nil, 0)
		if err != nil {
			t.Fatalf("parse %s: %v", e.Name(), err)
		}
		files = append(files, f)
	}
	codes := map[string]string{}
	for _, f := range files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if !isCodeName(name.Name) || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatalf("unquote %s: %v", name.Name, err)
					}
					codes[name.Name] = v
				}
			}
		}
	}
	if len(codes) < 20 {
		t.Fatalf("found only %d error codes in the token package: %v", len(codes), codes)
	}
	return codes
}

// isCodeName matches the token package's code constants: E + an upper-case letter.
func isCodeName(n string) bool { return len(n) > 1 && n[0] == 'E' && n[1] >= 'A' && n[1] <= 'Z' }

func TestEveryCodeHasMessagesAndStatus(t *testing.T) {
	for name, code := range domainCodes(t) {
		t.Run(name, func(t *testing.T) {
			zh, en, ok := api.Catalog(code)
			if !ok || zh == "" || en == "" {
				t.Errorf("code %q: zh %q en %q in catalog %v", code, zh, en, ok)
			}
			if zh == en {
				t.Errorf("code %q: zh and en messages are the same: %q", code, zh)
			}
			if _, ok := api.StatusByCode[code]; !ok {
				t.Errorf("code %q has no HTTP status", code)
			}
		})
	}
}

func TestStatusOf(t *testing.T) {
	tests := []struct {
		code string
		want int
	}{
		{tok.EInvalidRequest, 400},
		{tok.EInvalidJSON, 400},
		{tok.EInvalidID, 400},
		{tok.ENameTooLong, 400},
		{tok.ENameRequired, 400},
		{tok.EInvalidAllowIPs, 400},
		{tok.EBodyTooLarge, 413},
		{tok.ENotFound, 404},
		{tok.ETokenLimit, 409},
		{tok.EUnauthorized, 401},
		{tok.ERateLimited, 429},
		{tok.ETokenExpired, 400},
		{tok.ETokenExhausted, 400},
		{tok.EInternal, 500},
		{tok.EListFailed, 500},
		{tok.ESearchFailed, 500},
		{"no_such_code", 500},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			if got := api.StatusOf(tt.code); got != tt.want {
				t.Errorf("StatusOf(%q) = %d, want %d", tt.code, got, tt.want)
			}
		})
	}
}

func TestUpstreamMessagesVerbatim(t *testing.T) {
	tests := map[string]string{
		tok.ENotFound:       "Token不存在",
		tok.ENameTooLong:    "令牌名称过长",
		tok.ETokenExpired:   "令牌已过期，无法启用，请先修改令牌过期时间，或者设置为永不过期",
		tok.ETokenExhausted: "令牌可用额度已用尽，无法启用，请先修改令牌剩余额度，或者设置为无限额度",
		tok.EInvalidRequest: "参数错误",
		tok.EListFailed:     "获取Token列表失败",
		tok.ESearchFailed:   "搜索Token失败",
	}
	for code, want := range tests {
		t.Run(code, func(t *testing.T) {
			if got := api.Message(code, api.LangZH); got != want {
				t.Errorf("Message(%q, zh) = %q, want %q", code, got, want)
			}
		})
	}
}

func TestParseAcceptLanguage(t *testing.T) {
	tests := []struct {
		name, header string
		want         api.Lang
	}{
		{"empty", "", api.LangZH},
		{"en", "en", api.LangEN},
		{"en-US", "en-US,en;q=0.9", api.LangEN},
		{"upper case", "EN-GB", api.LangEN},
		{"zh first", "zh-CN,zh;q=0.9,en;q=0.8", api.LangZH},
		{"en wins by q", "zh-CN;q=0.5,en-US;q=0.9", api.LangEN},
		{"zh wins by q", "en;q=0.3, zh", api.LangZH},
		{"tie keeps first", "en;q=0.8,zh;q=0.8", api.LangEN},
		{"q=0 is not acceptable", "en;q=0,zh;q=0.1", api.LangZH},
		{"wildcard", "*", api.LangZH},
		{"other language", "fr-FR", api.LangZH},
		{"spaces", "  en-US ; q=1 ", api.LangEN},
		{"bad q", "en;q=abc,zh;q=0.5", api.LangZH},
		{"garbage", ";;,,;q=", api.LangZH},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := api.ParseAcceptLanguage(tt.header); got != tt.want {
				t.Errorf("ParseAcceptLanguage(%q) = %v, want %v", tt.header, got, tt.want)
			}
		})
	}
}

func TestRequestLang(t *testing.T) {
	r, _ := http.NewRequest("GET", "/api/token", nil)
	r.Header.Set("Accept-Language", "en-US")
	if got := api.RequestLang(r); got != api.LangEN {
		t.Errorf("RequestLang = %v, want en", got)
	}
}
