package importer_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/llmgw/token-service/internal/ddbcount"
	"github.com/llmgw/token-service/internal/dynamotest"
	"github.com/llmgw/token-service/internal/importer"
	"github.com/llmgw/token-service/internal/importer/importtest"
	"github.com/llmgw/token-service/internal/seal"
	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/token/dynamo"
)

// env is one table and the stores over it.
type env struct {
	client *dynamodb.Client
	table  string
	core   *dynamo.Core
	sealer token.Sealer
}

func newEnv(t *testing.T) env {
	t.Helper()
	client, table := dynamotest.NewTable(t)
	return envOn(t, client, table)
}

func envOn(t *testing.T, client dynamo.API, table string) env {
	t.Helper()
	core, err := dynamo.NewCore(client, table)
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	sealer, err := seal.NewAESGCM(key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := client.(*dynamodb.Client)
	return env{client: c, table: table, core: core, sealer: sealer}
}

// sqliteSource writes schema's fixtures (and extra tokens) to a new SQLite
// file and returns it opened.
func sqliteSource(t *testing.T, schema string, extra ...importtest.Token) (*sql.DB, importer.Source) {
	t.Helper()
	path := filepath.Join(t.TempDir(), schema+".db")
	rw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := importtest.Load(context.Background(), rw, schema, importtest.SQLite, extra...); err != nil {
		t.Fatal(err)
	}
	rw.Close()
	src, err := importer.ParseSource("sqlite:" + path)
	if err != nil {
		t.Fatal(err)
	}
	db, err := src.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, src
}

// run imports db into e's table.
func (e env) run(t *testing.T, db *sql.DB, src importer.Source, o importer.Options) *importer.Report {
	t.Helper()
	w, err := dynamo.NewImporter(e.core, e.sealer)
	if err != nil {
		t.Fatal(err)
	}
	o.SourceName, o.Dialect, o.Now = src.Name, src.Dialect, func() time.Time { return importtest.Now }
	if o.AllowedGroups == nil {
		o.AllowedGroups = []string{"default"}
	}
	rep, err := importer.Run(context.Background(), db, w, o)
	if err != nil {
		var b bytes.Buffer
		if rep != nil {
			rep.Print(&b)
		}
		t.Fatalf("import: %v\n%s", err, b.String())
	}
	return rep
}

// byKey finds the token of a stored source key.
func (e env) byKey(t *testing.T, stored string) (token.Token, bool) {
	t.Helper()
	tokens, err := dynamo.NewTokens(e.core, e.sealer, 0)
	if err != nil {
		t.Fatal(err)
	}
	key := token.KeyPrefix + stored
	user, id, err := tokens.LookupKey(context.Background(), token.HashKey(key), importtest.Now)
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

// TestImportFixtures imports each schema's fixtures from SQLite and checks
// every row: the live ones arrive with their key and every field, the
// others are skipped or refused for the reason the fixture names, and
// verify answers each imported key as its status says.
func TestImportFixtures(t *testing.T) {
	for _, schema := range []string{importtest.NewAPI, importtest.OneAPI} {
		t.Run(schema, func(t *testing.T) {
			e := newEnv(t)
			db, src := sqliteSource(t, schema)
			rep := e.run(t, db, src, importer.Options{AccessTokens: true})
			importtest.Check(t, e.core, e.sealer, rep, schema)
		})
	}
}

// countItems counts the table's items.
func countItems(t *testing.T, client *dynamodb.Client, table string) int {
	t.Helper()
	n := 0
	p := dynamodb.NewScanPaginator(client, &dynamodb.ScanInput{TableName: aws.String(table), Select: "COUNT"})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n += int(out.Count)
	}
	return n
}

// TestRerunChangesNothing: a second import writes nothing and says so; a
// dry run writes nothing at all.
func TestRerunChangesNothing(t *testing.T) {
	e := newEnv(t)
	db, src := sqliteSource(t, importtest.NewAPI)
	dry := e.run(t, db, src, importer.Options{AccessTokens: true, DryRun: true})
	if n := countItems(t, e.client, e.table); n != 0 {
		t.Fatalf("a dry run wrote %d items", n)
	}
	first := e.run(t, db, src, importer.Options{AccessTokens: true})
	if dry.Imported != first.Imported || dry.Refused != first.Refused {
		t.Errorf("dry run said %d imported, %d refused; the run did %d, %d", dry.Imported, dry.Refused, first.Imported, first.Refused)
	}
	items := countItems(t, e.client, e.table)

	var counter ddbcount.Counter
	counted := dynamodb.New(e.client.Options(), counter.Option)
	again := envOn(t, counted, e.table)
	again.client, again.sealer = e.client, e.sealer
	second := again.run(t, db, src, importer.Options{AccessTokens: true})
	if second.Imported != 0 || second.Already != first.Imported || second.AccessImported != 0 || second.AccessAlready != first.AccessImported {
		t.Errorf("second run: %d imported, %d already, %d access tokens, %d already; want 0, %d, 0, %d",
			second.Imported, second.Already, second.AccessImported, second.AccessAlready, first.Imported, first.AccessImported)
	}
	if n := countItems(t, e.client, e.table); n != items {
		t.Errorf("second run: %d items, want %d", n, items)
	}
	for op := range counter.Counts() {
		if op != "BatchGetItem" {
			t.Errorf("second run made %s requests: %v", op, counter.Counts())
		}
	}
	var b bytes.Buffer
	second.Print(&b)
	if !strings.Contains(b.String(), "nothing new: every row was imported by an earlier run") {
		t.Errorf("second run's report does not say it changed nothing:\n%s", b.String())
	}
}
