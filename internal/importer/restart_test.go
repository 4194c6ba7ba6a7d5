package importer_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/auth"
	"github.com/llmgw/token-service/internal/dynamotest"
	"github.com/llmgw/token-service/internal/importer"
	"github.com/llmgw/token-service/internal/importer/importtest"
	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/token/dynamo"
	"github.com/llmgw/token-service/internal/verify"
)

// manyTokens are extra rows: n tokens of user, ids from first.
func manyTokens(user, first int64, n int) []importtest.Token {
	out := make([]importtest.Token, n)
	for i := range out {
		id := first + int64(i)
		out[i] = importtest.Token{ID: id, UserID: user, Label: fmt.Sprintf("many-%d-%d", user, id), Status: 1,
			Name: fmt.Sprintf("t%d", id), RemainQuota: 10, Want: "imported"}
		out[i].ExpiredTime = new(int64)
		*out[i].ExpiredTime = -1
	}
	return out
}

// snapshot is what a table holds per user: the meta item's count and id
// counter, and each token's id and key hash.
type snapshot map[string]userSnapshot

type userSnapshot struct {
	Count, NextID int64
	Tokens        map[string]string // sk -> key_hash
}

func takeSnapshot(t *testing.T, client *dynamodb.Client, table string) snapshot {
	t.Helper()
	s := snapshot{}
	p := dynamodb.NewScanPaginator(client, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, av := range out.Items {
			var it struct {
				PK         string `dynamodbav:"pk"`
				SK         string `dynamodbav:"sk"`
				TokenCount int64  `dynamodbav:"token_count"`
				NextID     int64  `dynamodbav:"next_id"`
				KeyHash    string `dynamodbav:"key_hash"`
			}
			if err := attributevalue.UnmarshalMap(av, &it); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(it.PK, "USER#") {
				continue
			}
			u := s[it.PK]
			if u.Tokens == nil {
				u.Tokens = map[string]string{}
			}
			switch {
			case it.SK == "USER":
				u.Count, u.NextID = it.TokenCount, it.NextID
			case strings.HasPrefix(it.SK, "TOKEN#"):
				u.Tokens[it.SK] = it.KeyHash
			}
			s[it.PK] = u
		}
	}
	return s
}

// failingAPI fails every TransactWriteItems after the first ok ones, as an
// import killed at that point would stop writing.
type failingAPI struct {
	dynamo.API
	ok, calls atomic.Int64
}

func (f *failingAPI) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	if f.calls.Add(1) > f.ok.Load() {
		return nil, errors.New("killed")
	}
	return f.API.TransactWriteItems(ctx, in, opts...)
}

// TestKilledImportEndsExact: an import stopped after a few transactions (in
// the middle of a user of 130 tokens, three transactions) and run again
// ends with the table one uninterrupted import makes: the same tokens under
// the same ids, and every user's count equal to the tokens present.
func TestKilledImportEndsExact(t *testing.T) {
	extra := append(manyTokens(7, 100, 130), manyTokens(8, 300, 60)...)
	db, src := sqliteSource(t, importtest.NewAPI, extra...)

	whole := newEnv(t)
	whole.run(t, db, src, importer.Options{})
	want := takeSnapshot(t, whole.client, whole.table)

	client, table := dynamotest.NewTable(t)
	killed := &failingAPI{API: client}
	killed.ok.Store(3)
	k := envOn(t, killed, table)
	w, err := dynamo.NewImporter(k.core, k.sealer)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := importer.Run(context.Background(), db, w, importer.Options{SourceName: src.Name, Dialect: src.Dialect,
		AllowedGroups: []string{"default"}, Parallel: 2})
	if err == nil || rep.Failed == 0 {
		t.Fatalf("the killed import did not fail: %v", err)
	}
	half := takeSnapshot(t, client, table)
	if maps.EqualFunc(half, want, func(a, b userSnapshot) bool { return a.Count == b.Count }) {
		t.Fatal("the killed import wrote everything: it was not stopped halfway")
	}
	again := envOn(t, client, table)
	again.client, again.sealer = client, k.sealer
	again.run(t, db, src, importer.Options{})
	got := takeSnapshot(t, client, table)

	for pk, w := range want {
		g := got[pk]
		if g.Count != w.Count || g.NextID != w.NextID || !maps.Equal(g.Tokens, w.Tokens) {
			t.Errorf("%s after kill and rerun: count %d, next id %d, %d tokens; uninterrupted: %d, %d, %d",
				pk, g.Count, g.NextID, len(g.Tokens), w.Count, w.NextID, len(w.Tokens))
		}
		if g.Count != int64(len(g.Tokens)) {
			t.Errorf("%s: count %d, %d tokens present", pk, g.Count, len(g.Tokens))
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d users after kill and rerun, %d uninterrupted", len(got), len(want))
	}
}

// TestSecondSourceOverlap: a second source whose user ids overlap the
// first's is refused for those users, and imported apart with
// -user-prefix.
func TestSecondSourceOverlap(t *testing.T) {
	e := newEnv(t)
	newDB, newSrc := sqliteSource(t, importtest.NewAPI)
	e.run(t, newDB, newSrc, importer.Options{})
	oneDB, oneSrc := sqliteSource(t, importtest.OneAPI)

	rep := e.run(t, oneDB, oneSrc, importer.Options{})
	// one-api's users 1, 2 and 4 exist from new-api; 3 is deleted.
	if rep.UsersRefused != 3 || rep.Imported != 0 {
		t.Errorf("overlapping source: %d users refused, %d tokens imported; want 3, 0", rep.UsersRefused, rep.Imported)
	}
	if _, found := e.byKey(t, importtest.Key("o1")); found {
		t.Error("a refused user's token was imported")
	}
	for _, en := range rep.Entries {
		if en.Kind == "user refused" && !strings.Contains(en.Why, "another source") {
			t.Errorf("refusal says %q", en.Why)
		}
	}

	rep = e.run(t, oneDB, oneSrc, importer.Options{UserPrefix: "one-"})
	if rep.UsersRefused != 0 || rep.Imported == 0 {
		t.Errorf("with a prefix: %d users refused, %d imported", rep.UsersRefused, rep.Imported)
	}
	got, found := e.byKey(t, importtest.Key("o1"))
	if !found || got.UserID != "one-1" {
		t.Errorf("one-api's token 1 belongs to %q (found %v), want one-1", got.UserID, found)
	}
	if got, _ := e.byKey(t, importtest.Key("n1")); got.UserID != "1" {
		t.Errorf("new-api's token 1 now belongs to %q", got.UserID)
	}
}

// createHere creates one token for userID through the store, as the
// create endpoint does, and returns it.
func createHere(t *testing.T, e env, userID, name string) token.Token {
	t.Helper()
	tokens, err := dynamo.NewTokens(e.core, e.sealer, 0)
	if err != nil {
		t.Fatal(err)
	}
	made, err := token.Spec{Name: name, ExpiredTime: -1, Count: 1}.Tokens(userID, importtest.Now)
	if err != nil {
		t.Fatal(err)
	}
	created, err := tokens.Create(context.Background(), userID, made)
	if err != nil {
		t.Fatalf("create token of user %s: %v", userID, err)
	}
	return created[0]
}

// TestUserOfThisDeploymentRefused: a user id of this deployment is never
// merged with a source user: one who created a token here, and one who
// holds only an access token issued here (make user-token) and no token
// yet.
func TestUserOfThisDeploymentRefused(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, e env)
	}{
		{"created a token here", func(t *testing.T, e env) { createHere(t, e, "4", "mine") }},
		{"holds only an access token here", func(t *testing.T, e env) {
			access := dynamo.NewAccessTokens(e.core)
			if err := access.PutAccessToken(context.Background(), auth.Hash("at-holder-of-user-4"), auth.Principal{UserID: "4", Role: auth.RoleUser}); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tt.setup(t, e)
			db, src := sqliteSource(t, importtest.OneAPI)
			rep := e.run(t, db, src, importer.Options{})
			if rep.UsersRefused != 1 {
				t.Errorf("%d users refused, want 1 (user 4, a user of this deployment)", rep.UsersRefused)
			}
			if _, found := e.byKey(t, importtest.Key("o40")); found {
				t.Error("user 4's source token was merged into the user of this deployment")
			}
		})
	}
	// The access token's marker is no counter: the holder's first create
	// still gets id 1.
	t.Run("first create after an access token", func(t *testing.T) {
		e := newEnv(t)
		tests[1].setup(t, e)
		if got := createHere(t, e, "4", "first"); got.ID != 1 {
			t.Fatalf("first create after an access token got id %d, want 1", got.ID)
		}
	})
}

// TestNextTokenAboveImported: a user's next token gets an id above the
// highest imported, and a key made here keeps its checksum.
func TestNextTokenAboveImported(t *testing.T) {
	e := newEnv(t)
	db, src := sqliteSource(t, importtest.NewAPI, manyTokens(7, 1000, 3)...)
	e.run(t, db, src, importer.Options{})
	created := createHere(t, e, "7", "new")
	if created.ID != 1003 {
		t.Errorf("next token of user 7 got id %d, want 1003 (the highest imported is 1002)", created.ID)
	}
	if !token.HasChecksum(created.Key) {
		t.Error("a key made here has no checksum")
	}
}

// countingLedger counts the calls that reach the ledger.
type countingLedger struct {
	token.Ledger
	calls atomic.Int64
}

func (c *countingLedger) LookupKey(ctx context.Context, hash string, now time.Time) (string, int64, error) {
	c.calls.Add(1)
	return c.Ledger.LookupKey(ctx, hash, now)
}

// TestLegacyKeysOff: with AcceptLegacyKeys false an imported key is
// not_found without a store call; a key made here verifies either way.
func TestLegacyKeysOff(t *testing.T) {
	e := newEnv(t)
	db, src := sqliteSource(t, importtest.NewAPI)
	e.run(t, db, src, importer.Options{})
	ledger := &countingLedger{Ledger: dynamo.NewLedger(e.core)}
	imported := "sk-" + importtest.Key("n1")
	for _, legacy := range []bool{false, true} {
		v := verify.New(ledger, 0).AcceptLegacyKeys(legacy)
		ledger.calls.Store(0)
		a, err := v.Verify(context.Background(), token.VerifyRequest{Key: imported, ClientIP: "10.0.0.1", Model: "gpt-4"}, importtest.Now)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case !legacy && (a.Code != token.VerifyNotFound || ledger.calls.Load() != 0):
			t.Errorf("legacy off: verify = %+v after %d lookups, want not_found after none", a, ledger.calls.Load())
		case legacy && !a.Valid:
			t.Errorf("legacy on: verify = %+v, want valid", a)
		}
	}
}

// racingAPI creates a token for user 7 through the store just before the
// import's second transaction of user 7 (its import record is the last
// action), as the user would from the console while
// the import runs.
type racingAPI struct {
	dynamo.API
	calls  atomic.Int64
	create func()
}

func (r *racingAPI) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	last := in.TransactItems[len(in.TransactItems)-1].Update
	if pk, ok := last.Key["pk"].(*types.AttributeValueMemberS); ok && pk.Value == "USER#7" && r.calls.Add(1) == 2 {
		r.create()
	}
	return r.API.TransactWriteItems(ctx, in, opts...)
}

// TestImportRacesACreate: a token the user creates here between two of the
// import's transactions makes the import read and plan again: every row
// still arrives, and the count equals the tokens present.
func TestImportRacesACreate(t *testing.T) {
	db, src := sqliteSource(t, importtest.NewAPI, manyTokens(7, 100, 130)...)
	client, table := dynamotest.NewTable(t)
	racing := &racingAPI{API: client}
	e := envOn(t, racing, table)
	e.client = client
	tokens, err := dynamo.NewTokens(e.core, e.sealer, 0)
	if err != nil {
		t.Fatal(err)
	}
	racing.create = func() {
		made, err := token.Spec{Name: "made meanwhile", ExpiredTime: -1, Count: 1}.Tokens("7", importtest.Now)
		if err == nil {
			_, err = tokens.Create(context.Background(), "7", made)
		}
		if err != nil {
			t.Error(err)
		}
	}
	w, err := dynamo.NewImporter(e.core, e.sealer)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := importer.Run(context.Background(), db, w, importer.Options{SourceName: src.Name, Dialect: src.Dialect,
		AllowedGroups: []string{"default"}, Parallel: 1, Now: func() time.Time { return importtest.Now }})
	if err != nil {
		t.Fatal(err)
	}
	snap := takeSnapshot(t, client, table)
	u := snap["USER#7"]
	if u.Count != 131 || len(u.Tokens) != 131 {
		t.Errorf("user 7: count %d, %d tokens; want 131 (130 imported + 1 made meanwhile)", u.Count, len(u.Tokens))
	}
	if rep.Renumbered == 0 {
		t.Error("no row renumbered: the create did not land between the transactions")
	}
	for _, tok := range manyTokens(7, 100, 130) {
		if _, found := e.byKey(t, tok.StoredKey()); !found {
			t.Errorf("row %d lost", tok.ID)
		}
	}
}
