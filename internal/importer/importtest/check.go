package importtest

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/llmgw/token-service/internal/importer"
	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/token/dynamo"
	"github.com/llmgw/token-service/internal/verify"
)

// wantToken is what a fixture row imported as user must read as.
func wantToken(schema string, r Token) token.Token {
	w := token.Token{UserID: strconv.FormatInt(r.UserID, 10), ID: r.ID, Name: r.Name,
		RemainQuota: max(r.RemainQuota, 0), UsedQuota: r.UsedQuota, UnlimitedQuota: r.Unlimited,
		ExpiredTime: -1, Status: token.Status(r.Status)}
	if r.ExpiredTime != nil {
		w.ExpiredTime = *r.ExpiredTime
	}
	if r.Models != nil {
		for _, m := range strings.Split(*r.Models, ",") {
			if m = strings.TrimSpace(m); m != "" {
				w.ModelLimits = append(w.ModelLimits, m)
			}
		}
	}
	w.ModelLimitsEnabled = r.ModelsOn || (schema == OneAPI && len(w.ModelLimits) > 0)
	if r.IPs != nil {
		w.AllowIPs, _ = token.ParseAllowIPs(*r.IPs)
	}
	if r.Group != nil {
		w.Group = *r.Group
	}
	if r.Status == 3 || r.Status == 4 {
		w.Status = token.StatusEnabled
		if s := w.EffectiveStatus(Now); s != token.StatusExpired && s != token.StatusExhausted {
			w.Status = token.StatusDisabled
		}
	}
	switch {
	case strings.Trim(r.Name, " \u200b") == "":
		w.Name = "token-" + strconv.FormatInt(r.ID, 10)
	case utf8.RuneCountInString(r.Name) > 30:
		w.Name = string([]rune(r.Name)[:30])
	}
	return w
}

// byKey finds the token of a stored source key.
func byKey(t testing.TB, core *dynamo.Core, sealer token.Sealer, stored string) (token.Token, bool) {
	t.Helper()
	tokens, err := dynamo.NewTokens(core, sealer, 0)
	if err != nil {
		t.Fatal(err)
	}
	key := token.KeyPrefix + stored
	user, id, err := tokens.LookupKey(context.Background(), token.HashKey(key), Now)
	if token.ErrorCode(err) == token.ENotFound {
		return token.Token{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokens.Get(context.Background(), user, id)
	if err != nil {
		t.Fatal(err)
	}
	return tok, true
}

// Check checks a table after the import of schema's fixtures (rep is the
// import's report): every row that Want says is imported arrives with its
// key and every field (wantToken), and verify, with legacy keys accepted,
// answers it as its status says; every other row is absent and reported
// for the reason Want names.
func Check(t testing.TB, core *dynamo.Core, sealer token.Sealer, rep *importer.Report, schema string) {
	t.Helper()
	reasons := map[int64]string{}
	for _, en := range rep.Entries {
		if en.Kind == "refused" || en.Kind == "skipped" {
			reasons[en.SourceToken] = en.Kind + ": " + en.Why
		}
	}
	ledger := dynamo.NewLedger(core)
	v := verify.New(ledger, 0).AcceptLegacyKeys(true)
	imported := 0
	for _, r := range Tokens(schema) {
		got, found := byKey(t, core, sealer, r.StoredKey())
		if r.Want != "imported" {
			if found {
				t.Errorf("row %d (%s) was imported, want %s", r.ID, r.Name, r.Want)
			}
			if !strings.HasPrefix(reasons[r.ID], r.Want) {
				t.Errorf("row %d: report says %q, want %q...", r.ID, reasons[r.ID], r.Want)
			}
			continue
		}
		imported++
		if !found {
			t.Errorf("row %d (%s) not imported: %q", r.ID, r.Name, reasons[r.ID])
			continue
		}
		want := wantToken(schema, r)
		if got.ID != want.ID || got.UserID != want.UserID || got.Name != want.Name || got.Status != want.Status ||
			got.RemainQuota != want.RemainQuota || got.UsedQuota != want.UsedQuota || got.UnlimitedQuota != want.UnlimitedQuota ||
			got.ModelLimitsEnabled != want.ModelLimitsEnabled || !slices.Equal(got.ModelLimits, want.ModelLimits) ||
			!slices.Equal(got.AllowIPs, want.AllowIPs) || got.Group != want.Group || got.ExpiredTime != want.ExpiredTime {
			t.Errorf("row %d imported as\n%+v\nwant\n%+v", r.ID, got, want)
		}
		// Verify with the key, as the relay would, from an allowed IP and
		// for an allowed model.
		req := token.VerifyRequest{Key: "sk-" + r.StoredKey()}
		if len(want.AllowIPs) > 0 {
			req.ClientIP = strings.Split(want.AllowIPs[0], "/")[0]
		}
		if len(want.ModelLimits) > 0 {
			req.Model = want.ModelLimits[0]
		}
		a, err := v.Verify(context.Background(), req, Now)
		if err != nil {
			t.Fatal(err)
		}
		wantCode := ""
		switch {
		case r.UserID == 2 || want.Status == token.StatusDisabled:
			wantCode = token.VerifyDisabled
		case want.Expired(Now):
			wantCode = token.VerifyExpired
		case want.Exhausted():
			wantCode = token.VerifyExhausted
		}
		if a.Code != wantCode || a.Valid != (wantCode == "") {
			t.Errorf("row %d: verify = %+v, want code %q", r.ID, a, wantCode)
		}
	}
	if rep.Imported != imported {
		t.Errorf("report: %d imported, want %d", rep.Imported, imported)
	}
}
