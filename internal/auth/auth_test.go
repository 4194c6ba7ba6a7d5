package auth_test

import (
	"strings"
	"testing"

	"github.com/llmgw/token-service/internal/auth"
)

func TestParseBearer(t *testing.T) {
	tok, err := auth.NewAccessToken()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, header string
		ok           bool
	}{
		{"bearer", "Bearer " + tok, true},
		{"lower-case scheme", "bearer " + tok, true},
		{"missing", "", false},
		{"basic scheme", "Basic " + tok, false},
		{"no scheme", tok, false},
		{"truncated", "Bearer " + tok[:len(tok)-1], false},
		{"no prefix", "Bearer " + strings.TrimPrefix(tok, "at-"), false},
		{"sk key", "Bearer sk-" + strings.Repeat("a", 48), false},
		{"bad characters", "Bearer at-" + strings.Repeat("*", 43), false},
		{"huge", "Bearer " + strings.Repeat("a", 1<<20), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := auth.ParseBearer(tt.header)
			if (err == nil) != tt.ok || (tt.ok && got != tok) {
				t.Fatalf("ParseBearer = %q, %v; want ok=%v", got, err, tt.ok)
			}
		})
	}
}

func TestHashAndUniqueness(t *testing.T) {
	a, _ := auth.NewAccessToken()
	b, _ := auth.NewAccessToken()
	if a == b || auth.Hash(a) == auth.Hash(b) || len(auth.Hash(a)) != 64 || strings.Contains(auth.Hash(a), a) {
		t.Fatal("access tokens or their hashes collide or leak")
	}
}

func TestCheckUserID(t *testing.T) {
	for id, ok := range map[string]bool{
		"42": true, "user@example.com": true, "a_b-c.d": true,
		"": false, "a b": false, "USER#1": false, strings.Repeat("x", 65): false,
	} {
		if err := auth.CheckUserID(id); (err == nil) != ok {
			t.Errorf("CheckUserID(%q) = %v, want ok=%v", id, err, ok)
		}
	}
}

func FuzzParseBearer(f *testing.F) {
	tok, err := auth.NewAccessToken()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		"Bearer " + tok, "bearer " + tok, "Bearer  " + tok + " ", "Basic " + tok, tok, "Bearer ", "",
		"Bearer at-short", "Bearer sk-" + strings.Repeat("a", 48), "Bearer " + tok + " " + tok,
		"Bearer at-" + strings.Repeat("+", 43), "Bearer\t" + tok,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		got, err := auth.ParseBearer(header)
		if err != nil {
			if err != auth.ErrMalformed || got != "" {
				t.Fatalf("ParseBearer(%q) = %q, %v; want \"\", ErrMalformed", header, got, err)
			}
			return
		}
		if !auth.WellFormed(got) || !strings.Contains(header, got) {
			t.Fatalf("ParseBearer(%q) = %q, not a well-formed token of the header", header, got)
		}
		if again, err := auth.ParseBearer("Bearer " + got); err != nil || again != got {
			t.Fatalf("the parsed token does not parse again: %q, %v", again, err)
		}
	})
}

func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{"Bearer x", "bearer\tx", "  Bearer  x  ", "x", "Bearer", "", "Basic a b", "Bearer\nx", "Bearer\u00a0x", "Bearer x\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		c, err := auth.ParseAuthorization(header)
		if err != nil {
			if c != (auth.Credentials{}) || (err != auth.ErrMalformed && err != auth.ErrNoCredential) {
				t.Fatalf("ParseAuthorization(%q) = %+v, %v", header, c, err)
			}
			return
		}
		if c.Credential == "" || !strings.Contains(header, c.Credential) || strings.ContainsAny(c.Credential+c.Scheme, " \t") {
			t.Fatalf("ParseAuthorization(%q) = %+v: not a word of the header", header, c)
		}
		again, err := auth.ParseAuthorization(strings.TrimSpace(c.Scheme + " " + c.Credential))
		if err != nil || again != c {
			t.Fatalf("%+v does not parse back: %+v, %v", c, again, err)
		}
	})
}
