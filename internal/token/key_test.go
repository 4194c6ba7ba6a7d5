package token_test

import (
	"hash/crc32"
	"regexp"
	"strings"
	"testing"

	"github.com/llmgw/token-service/internal/token"
)

var keyPattern = regexp.MustCompile(`^sk-[0-9A-Za-z]{48}$`)

func TestNewKeyShapeChecksumAndUniqueness(t *testing.T) {
	const n = 10000
	seen := make(map[string]bool, n)
	for i := 0; i < n; i++ {
		k, err := token.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		if !keyPattern.MatchString(k) {
			t.Fatalf("key %d has the wrong shape", i)
		}
		got, err := token.ParseKey(k)
		if err != nil || got != k {
			t.Fatalf("key %d fails its own checksum: %v", i, err)
		}
		if seen[k] {
			t.Fatalf("key %d repeats an earlier key", i)
		}
		seen[k] = true
	}
}

// The checksum is specified exactly so that scanners outside this code base
// can compute it: base62 (0-9A-Za-z) of crc32.ChecksumIEEE(body), 6 chars.
func TestChecksumMatchesSpecification(t *testing.T) {
	body := strings.Repeat("a", 42)
	v := crc32.ChecksumIEEE([]byte(body))
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	sum := ""
	for i := 0; i < 6; i++ {
		sum = string(alphabet[v%62]) + sum
		v /= 62
	}
	if _, err := token.ParseKey("sk-" + body + sum); err != nil {
		t.Fatalf("key with a hand-computed checksum refused: %v", err)
	}
}

func TestParseKeyRefusesAnyOneCharacterChange(t *testing.T) {
	k, err := token.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(strings.TrimPrefix(k, "sk-"))
	for i := range body {
		orig := body[i]
		body[i] = otherBase62(orig)
		if _, err := token.ParseKey("sk-" + string(body)); err == nil {
			t.Errorf("changing character %d still passes the checksum", i)
		}
		body[i] = orig
	}
}

func otherBase62(c byte) byte {
	if c == 'a' {
		return 'b'
	}
	return 'a'
}

func TestParseKey(t *testing.T) {
	good, err := token.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	bare := strings.TrimPrefix(good, "sk-")
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"with prefix", good, true},
		{"without prefix", bare, true},
		{"empty", "", false},
		{"prefix only", "sk-", false},
		{"too short", good[:len(good)-1], false},
		{"too long", good + "a", false},
		{"new-api channel suffix", good + "-3", false},
		{"non-alphanumeric", "sk-" + bare[:47] + "_", false},
		{"non-ascii", "sk-" + bare[:46] + "é", false},
		{"double prefix", "sk-" + good, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := token.ParseKey(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseKey err = %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && got != good {
				t.Fatalf("ParseKey = %q, want the canonical key", got)
			}
		})
	}
}

func TestMaskAndFragments(t *testing.T) {
	key := "sk-abcd" + strings.Repeat("0", 36) + "wxyz99"
	mask := token.MaskKey(key)
	if want := "sk-abcd**********yz99"; mask != want {
		t.Fatalf("MaskKey = %q, want %q", mask, want)
	}
	tests := []struct {
		fragment string
		want     bool
	}{
		{"", true},
		{"abcd", true},
		{"bc", true},
		{"sk-ab", true},
		{"sk-abcd", true},
		{"yz99", true},
		{"z9", true},
		{"sk-bc", false},
		{"abcde", false},
		{"0000", false},
		{"ABCD", false},
		{"sk-abcd**********yz99", true},
		{"abcd***", true},
		{"**yz9", true},
		{"abcd**yz99", false},
		{"sk-abce***", false},
	}
	for _, tt := range tests {
		t.Run(tt.fragment, func(t *testing.T) {
			if got := token.MatchesKeyFragment(mask, tt.fragment); got != tt.want {
				t.Errorf("MatchesKeyFragment(%q) = %v, want %v", tt.fragment, got, tt.want)
			}
		})
	}
}

func TestHashKeyIsStableAndHidesTheKey(t *testing.T) {
	k, _ := token.NewKey()
	h := token.HashKey(k)
	if h != token.HashKey(k) || len(h) != 64 || strings.Contains(h, k[3:]) {
		t.Fatalf("HashKey = %q", h)
	}
}

func FuzzParseKey(f *testing.F) {
	k, _ := token.NewKey()
	f.Add(k)
	f.Add(k[3:])
	f.Add("sk-")
	f.Add("sk-" + strings.Repeat("Z", 48))
	f.Fuzz(func(t *testing.T, s string) {
		got, err := token.ParseKey(s)
		if err != nil {
			return
		}
		if !keyPattern.MatchString(got) {
			t.Fatalf("ParseKey accepted %q as %q", s, got)
		}
		if again, err := token.ParseKey(got); err != nil || again != got {
			t.Fatalf("canonical key does not parse to itself")
		}
	})
}

func TestParseLegacyKey(t *testing.T) {
	made, err := token.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	legacy := "sk-" + strings.Repeat("aB3", 16) // right shape, no checksum of ours
	tests := []struct {
		name        string
		in          string
		strict, lax bool // ParseKey, ParseLegacyKey accept it
	}{
		{"made here", made, true, true},
		{"made here without sk-", strings.TrimPrefix(made, "sk-"), true, true},
		{"imported", legacy, false, true},
		{"imported without sk-", strings.TrimPrefix(legacy, "sk-"), false, true},
		{"47 characters", legacy[:len(legacy)-1], false, false},
		{"49 characters", legacy + "a", false, false},
		{"outside the alphabet", legacy[:len(legacy)-1] + "-", false, false},
		{"new-api channel suffix", legacy + "-3", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errStrict := token.KeyParser(false)(tt.in)
			got, errLax := token.KeyParser(true)(tt.in)
			if (errStrict == nil) != tt.strict || (errLax == nil) != tt.lax {
				t.Fatalf("ParseKey ok %v, ParseLegacyKey ok %v; want %v, %v", errStrict == nil, errLax == nil, tt.strict, tt.lax)
			}
			if tt.lax && (!strings.HasPrefix(got, "sk-") || len(got) != 51 || token.HasChecksum(got) != tt.strict) {
				t.Errorf("ParseLegacyKey = %q (checksum %v)", got, token.HasChecksum(got))
			}
		})
	}
}
