package token_test

import (
	"testing"

	"github.com/llmgw/token-service/internal/token"
)

// TestCheckNameShowsWhatItIs: a name must show what it is (README "The token object",
// name); ordinary names in any script pass.
func TestCheckNameShowsWhatItIs(t *testing.T) {
	tests := []struct {
		name string
		in   string
		code string
	}{
		{"ascii", "My API Token", ""},
		{"chinese", "我的令牌", ""},
		{"japanese", "トークン・テスト", ""},
		{"arabic", "رمز الوصول", ""},
		{"emoji with ZWJ", "👩‍💻 dev", ""},
		{"family emoji", "👨‍👩‍👧", ""},
		{"flag", "🇨🇳 prod", ""},
		{"combining accent on a base", "café", ""},
		{"BOM only inside", "na\ufeffme", ""},
		{"ideographic space around text", "\u3000名\u3000", ""},
		{"zero-width spaces only", "\u200b\u200b", token.EInvalidName},
		{"zero-width joiner only", "\u200d", token.EInvalidName},
		{"word joiner and spaces", " \u2060 ", token.EInvalidName},
		{"right-to-left override", "\u202egnp.exe", token.EInvalidName},
		{"left-to-right isolate", "a\u2066b", token.EInvalidName},
		{"pop directional isolate", "a\u2069b", token.EInvalidName},
		{"right-to-left mark", "abc\u200f", token.EInvalidName},
		{"arabic letter mark", "\u061cabc", token.EInvalidName},
		{"tag characters", "ok\U000E0041\U000E0042", token.EInvalidName},
		{"leading BOM", "\ufeffname", token.EInvalidName},
		{"hangul filler only", "\u3164\u3164", token.EInvalidName},
		{"braille blank only", "\u2800", token.EInvalidName},
		{"combining marks only", "\u0301\u0302", token.EInvalidName},
		{"variation selector only", "\ufe0f", token.EInvalidName},
		{"soft hyphen only", "\u00ad", token.EInvalidName},
		{"control character", "a\x07b", token.EInvalidName},
		{"C1 control character", "a\u0085b", token.EInvalidName},
		{"line separator", "a\u2028b", token.EInvalidName},
		{"raw invalid bytes", "a\xff\xfe", token.EInvalidName},
		{"whitespace only", " \t ", token.ENameRequired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := codeOf(token.CheckName(tt.in)); got != tt.code {
				t.Errorf("CheckName(%q) = %q, want %q", tt.in, got, tt.code)
			}
		})
	}
}
