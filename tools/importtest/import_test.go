//go:build linux

package importtest_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmgw/token-service/internal/dynamotest"
	"github.com/llmgw/token-service/internal/importer"
	fixtures "github.com/llmgw/token-service/internal/importer/importtest"
	"github.com/llmgw/token-service/internal/seal"
	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/token/dynamo"
	"github.com/llmgw/token-service/tools/dbserver"
	"github.com/llmgw/token-service/tools/ddblocal"
	"github.com/llmgw/token-service/tools/stacktest"
)

// runner runs the tests, then stops the database servers they started.
type runner struct{ m *testing.M }

func (r runner) Run() int {
	code := r.m.Run()
	dbserver.Stop()
	return code
}

func TestMain(m *testing.M) { ddblocal.RunTests(runner{m}) }

func randomName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// loadServer loads schema's fixtures into a new database of the shared
// server of kind and returns its -from value.
func loadServer(t *testing.T, kind, schema string) string {
	t.Helper()
	srv, err := dbserver.Shared(kind)
	if err != nil {
		t.Fatal(err)
	}
	name := randomName(strings.ReplaceAll(schema, "-", "") + "_")
	db, err := srv.CreateDatabase(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dialect := fixtures.MySQL
	if kind == "postgres" {
		dialect = fixtures.PostgreSQL
	}
	if err := fixtures.Load(context.Background(), db, schema, dialect); err != nil {
		t.Fatal(err)
	}
	return srv.URL(name)
}

// loadSQLite writes schema's fixtures to a new SQLite file and returns its
// -from value.
func loadSQLite(t *testing.T, schema string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), schema+".db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := fixtures.Load(context.Background(), db, schema, fixtures.SQLite); err != nil {
		t.Fatal(err)
	}
	return "sqlite:" + path
}

// runImport imports from into table with sealer.
func runImport(t *testing.T, from string, client dynamo.API, table string, sealer token.Sealer, o importer.Options) *importer.Report {
	t.Helper()
	src, err := importer.ParseSource(from)
	if err != nil {
		t.Fatal(err)
	}
	db, err := src.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	core, err := dynamo.NewCore(client, table)
	if err != nil {
		t.Fatal(err)
	}
	w, err := dynamo.NewImporter(core, sealer)
	if err != nil {
		t.Fatal(err)
	}
	o.SourceName, o.Dialect, o.Now = src.Name, src.Dialect, func() time.Time { return fixtures.Now }
	o.AllowedGroups = []string{"default"}
	rep, err := importer.Run(context.Background(), db, w, o)
	if err != nil {
		var b bytes.Buffer
		if rep != nil {
			rep.Print(&b)
		}
		t.Fatalf("import %s: %v\n%s", src.Name, err, b.String())
	}
	return rep
}

func newSealer(t *testing.T) token.Sealer {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	s, err := seal.NewAESGCM(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestImportFromDatabases imports both schemas' fixtures from MariaDB and
// PostgreSQL (SQLite is internal/importer's own test) and checks every
// row: the live ones with their key and every field, verify answering each
// as its status says, the others skipped or refused for their reason.
func TestImportFromDatabases(t *testing.T) {
	for _, kind := range []string{"mysql", "postgres"} {
		for _, schema := range []string{fixtures.NewAPI, fixtures.OneAPI} {
			t.Run(kind+"/"+schema, func(t *testing.T) {
				from := loadServer(t, kind, schema)
				client, table := dynamotest.NewTable(t)
				sealer := newSealer(t)
				rep := runImport(t, from, client, table, sealer, importer.Options{AccessTokens: true})
				core, err := dynamo.NewCore(client, table)
				if err != nil {
					t.Fatal(err)
				}
				fixtures.Check(t, core, sealer, rep, schema)
				again := runImport(t, from, client, table, sealer, importer.Options{AccessTokens: true})
				if again.Imported != 0 || again.Already != rep.Imported {
					t.Errorf("second import: %d imported, %d already; want 0, %d", again.Imported, again.Already, rep.Imported)
				}
			})
		}
	}
}

// stackFunctions are the functions the stack tests use.
var stackFunctions = []string{"AuthorizerFunction", "ListTokensFunction", "GetTokenFunction", "SearchTokensFunction",
	"CreateTokenFunction", "UsageTokenFunction", "VerifyTokenFunction", "RevealTokenKeyFunction"}

// stackSealer is the development sealing key of the stack's functions, so
// that imported keys open as created ones do.
func stackSealer(t *testing.T, s *stacktest.Stack) token.Sealer {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.LocalDir, "sealing-key"))
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := seal.NewAESGCMFromBase64(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return sealer
}

func verifyKey(t *testing.T, s *stacktest.Stack, event map[string]any) stacktest.VerifyAnswer {
	t.Helper()
	a, err := stacktest.Verify(context.Background(), stacktest.NewLambdaClient(s.LambdaURL), event)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// newAPIAccess returns the access token of a new-api fixture user as stored
// (trimmed).
func newAPIAccess(id int64) string {
	for _, u := range fixtures.Users(fixtures.NewAPI) {
		if u.ID == id {
			return strings.TrimSpace(u.AccessToken)
		}
	}
	panic("no such fixture user")
}

// TestImportedOverTheStack: with AcceptLegacyKeys and
// AcceptLegacyAccessTokens true, imported keys work at verify, usage,
// search and reveal; a disabled user's keys answer disabled; imported
// access tokens work, with or without Bearer, for their own user and no
// other; a new token gets an id above the imported ones and a key with the
// checksum.
func TestImportedOverTheStack(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Template: "../../template.yaml", Functions: stackFunctions,
		Overrides: map[string]string{"AcceptLegacyKeys": "true", "AcceptLegacyAccessTokens": "true"}})
	from := loadServer(t, "mysql", fixtures.NewAPI)
	runImport(t, from, s.DB, s.Table, stackSealer(t, s), importer.Options{AccessTokens: true})

	key := "sk-" + fixtures.Key("n1")
	if a := verifyKey(t, s, map[string]any{"key": key, "model": "gpt-4", "client_ip": "10.0.0.1", "consume": 10}); !a.Valid || a.Token == nil || a.Token.ID != 1 || a.Token.RemainQuota != 990 {
		t.Errorf("verify of imported key: %+v, want valid, id 1, remain 990", a)
	}
	if a := verifyKey(t, s, map[string]any{"key": key, "model": "gpt-4", "client_ip": "10.9.9.9"}); a.Code != "ip_not_allowed" {
		t.Errorf("verify from outside the imported IP rules: %+v", a)
	}
	if a := verifyKey(t, s, map[string]any{"key": "sk-" + fixtures.Key("n20")}); a.Code != "disabled" {
		t.Errorf("verify of a disabled user's key: %+v, want disabled", a)
	}
	if a := verifyKey(t, s, map[string]any{"key": "sk-" + fixtures.Key("n3")}); a.Code != "not_found" {
		t.Errorf("verify of a soft-deleted row's key: %+v, want not_found", a)
	}
	if r := s.Do(t, "GET", "/api/usage/token", map[string]string{"Authorization": "Bearer " + key}, ""); r.Status != 200 {
		t.Errorf("usage of imported key: %d %s", r.Status, r.Body)
	}

	own := newAPIAccess(1)
	for _, header := range []string{"Bearer " + own, own, "bearer\t" + own} {
		r := s.Do(t, "GET", "/api/token/1", map[string]string{"Authorization": header}, "")
		if r.Status != 200 {
			t.Errorf("GET own token with %q: %d %s", header[:8], r.Status, r.Body)
		}
	}
	if r := s.Do(t, "GET", "/api/token/40", map[string]string{"Authorization": "Bearer " + own}, ""); r.Status != 404 {
		t.Errorf("user 1 reading user 4's token 40: %d, want 404", r.Status)
	}
	if r := s.Do(t, "GET", "/api/token/40", map[string]string{"Authorization": "Bearer " + newAPIAccess(4)}, ""); r.Status != 200 {
		t.Errorf("user 4 reading their token 40 (access token trimmed at import): %d %s", r.Status, r.Body)
	}
	if r := s.Do(t, "GET", "/api/token", map[string]string{"Authorization": "Bearer " + newAPIAccess(2)}, ""); r.Status != 403 {
		t.Errorf("a disabled user's imported access token: %d, want 403", r.Status)
	}
	if r := s.Do(t, "GET", "/api/token", map[string]string{"Authorization": "Bearer " + newAPIAccess(3)}, ""); r.Status != 403 {
		t.Errorf("a deleted user's access token: %d, want 403", r.Status)
	}

	r := s.Do(t, "GET", "/api/token/search?token="+key, map[string]string{"Authorization": "Bearer " + own}, "")
	var found []struct{ ID int64 }
	if err := json.Unmarshal(r.Envelope.Data, &found); r.Status != 200 || err != nil || len(found) != 1 || found[0].ID != 1 {
		t.Errorf("search by the imported key: %d %s", r.Status, r.Body)
	}
	r = s.Do(t, "POST", "/api/token/1/key", map[string]string{"Authorization": "Bearer " + own}, "")
	var revealed struct{ Key string }
	if err := json.Unmarshal(r.Envelope.Data, &revealed); err != nil || revealed.Key != key {
		t.Errorf("reveal of the imported key: %d %s", r.Status, r.Body)
	}

	r = s.Do(t, "POST", "/api/token", map[string]string{"Authorization": "Bearer " + own}, `{"name":"made here","expired_time":-1,"unlimited_quota":true}`)
	var created struct {
		ID  int64
		Key string
	}
	if err := json.Unmarshal(r.Envelope.Data, &created); err != nil || r.Status != 200 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	// User 1's highest imported id is 16 (17 was refused).
	if created.ID != 17 || !token.HasChecksum(created.Key) {
		t.Errorf("created token: id %d, checksum %v; want id 17 with a checksum", created.ID, token.HasChecksum(created.Key))
	}
}

// TestLegacyOffOverTheStack: with both parameters at their default
// (false), imported keys are not_found and refused by usage, imported
// access tokens are refused, and keys made here keep working.
func TestLegacyOffOverTheStack(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Template: "../../template.yaml",
		Functions: []string{"AuthorizerFunction", "ListTokensFunction", "CreateTokenFunction", "UsageTokenFunction", "VerifyTokenFunction"}})
	runImport(t, loadSQLite(t, fixtures.NewAPI), s.DB, s.Table, stackSealer(t, s), importer.Options{AccessTokens: true})

	key := "sk-" + fixtures.Key("n1")
	if a := verifyKey(t, s, map[string]any{"key": key, "model": "gpt-4", "client_ip": "10.0.0.1"}); a.Code != "not_found" {
		t.Errorf("verify of imported key with AcceptLegacyKeys=false: %+v, want not_found", a)
	}
	if r := s.Do(t, "GET", "/api/usage/token", map[string]string{"Authorization": "Bearer " + key}, ""); r.Status != 401 {
		t.Errorf("usage of imported key with AcceptLegacyKeys=false: %d, want 401", r.Status)
	}
	own := newAPIAccess(1)
	for _, header := range []string{"Bearer " + own, own} {
		if r := s.Do(t, "GET", "/api/token", map[string]string{"Authorization": header}, ""); r.Status != 403 {
			t.Errorf("legacy access token with AcceptLegacyAccessTokens=false: %d, want 403", r.Status)
		}
	}
	at := s.IssueToken(t, "1")
	r := s.Do(t, "POST", "/api/token", map[string]string{"Authorization": "Bearer " + at}, `{"name":"made here","expired_time":-1,"unlimited_quota":true}`)
	var created struct{ Key string }
	if err := json.Unmarshal(r.Envelope.Data, &created); err != nil || !token.HasChecksum(created.Key) {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	if a := verifyKey(t, s, map[string]any{"key": created.Key}); !a.Valid {
		t.Errorf("a key made here: %+v, want valid", a)
	}

}
