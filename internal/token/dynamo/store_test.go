package dynamo_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/auth"
	"github.com/llmgw/token-service/internal/dynamotest"
	"github.com/llmgw/token-service/internal/seal"
	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/token/dynamo"
)

// env is every part of a store on a fresh table.
type env struct {
	parts
	client *dynamodb.Client
	table  string
	sealer *seal.AESGCM
}

// parts is every part of one store, over one core.
type parts struct {
	core   *dynamo.Core
	tokens *dynamo.Tokens
	keys   *dynamo.Keys
	ledger *dynamo.Ledger
	access *dynamo.AccessTokens
}

// newParts builds every part of a store of table through client, sealing
// with sealer, its per-user token limit limit (0: the default).
func newParts(t *testing.T, client dynamo.API, table string, sealer token.Sealer, limit int) parts {
	t.Helper()
	core, err := dynamo.NewCore(client, table)
	if err != nil {
		t.Fatalf("NewCore: %v", err)
	}
	tokens, err := dynamo.NewTokens(core, sealer, limit)
	if err != nil {
		t.Fatalf("NewTokens: %v", err)
	}
	keys, err := dynamo.NewKeys(core, sealer)
	if err != nil {
		t.Fatalf("NewKeys: %v", err)
	}
	return parts{core: core, tokens: tokens, keys: keys, ledger: dynamo.NewLedger(core), access: dynamo.NewAccessTokens(core)}
}

func newEnv(t *testing.T, limit int) env {
	t.Helper()
	client, table := dynamotest.NewTable(t)
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	sealer, err := seal.NewAESGCM(key)
	if err != nil {
		t.Fatal(err)
	}
	return env{parts: newParts(t, client, table, sealer, limit), client: client, table: table, sealer: sealer}
}

var now = time.Unix(1_800_000_000, 0)

// spec is a valid create input with the given name and count.
func spec(name string, count int) token.Spec {
	return token.Spec{
		Name:               name,
		Count:              count,
		ExpiredTime:        token.NeverExpires,
		RemainQuota:        1000,
		ModelLimitsEnabled: true,
		ModelLimits:        []string{"gpt-4o", "claude"},
		AllowIPs:           []string{"10.0.0.0/8"},
		Group:              "default",
		RPMLimit:           60,
	}
}

func mustTokens(t *testing.T, userID string, s token.Spec) []token.Token {
	t.Helper()
	toks, err := s.Tokens(userID, now)
	if err != nil {
		t.Fatalf("Tokens: %v", err)
	}
	return toks
}

func mustCreate(t *testing.T, s *dynamo.Tokens, userID string, toks []token.Token) []token.Token {
	t.Helper()
	got, err := s.Create(context.Background(), userID, toks)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return got
}

// masked is t as a read returns it: without the full key.
func masked(t token.Token) token.Token {
	t.Key = ""
	return t
}

func ids(toks []token.Token) []int64 {
	out := make([]int64, len(toks))
	for i, t := range toks {
		out[i] = t.ID
	}
	return out
}

// seq returns from, from+step, ... count values.
func seq(from, step int64, count int) []int64 {
	out := make([]int64, count)
	for i := range out {
		out[i] = from + int64(i)*step
	}
	return out
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := token.ErrorCode(err); got != code {
		t.Fatalf("%s: error code %q (%v), want %q", what, got, err, code)
	}
}

// countTokenItems counts the user's token items in the table, bypassing the
// store and its meta item.
func countTokenItems(t *testing.T, e env, userID string) int {
	t.Helper()
	kc := expression.Key("pk").Equal(expression.Value("USER#" + userID)).
		And(expression.Key("sk").BeginsWith("TOKEN#"))
	expr, err := expression.NewBuilder().WithKeyCondition(kc).Build()
	if err != nil {
		t.Fatal(err)
	}
	p := dynamodb.NewQueryPaginator(e.client, &dynamodb.QueryInput{
		TableName:                 aws.String(e.table),
		KeyConditionExpression:    expr.KeyCondition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
		ConsistentRead:            aws.Bool(true),
		Select:                    types.SelectCount,
	})
	n := 0
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("count tokens: %v", err)
		}
		n += int(out.Count)
	}
	return n
}

// countLookupItems counts every KEY# item in the table.
func countLookupItems(t *testing.T, e env) int {
	t.Helper()
	n := 0
	for _, item := range scanAll(t, e) {
		if pk, ok := item["pk"].(*types.AttributeValueMemberS); ok && strings.HasPrefix(pk.Value, "KEY#") {
			n++
		}
	}
	return n
}

func scanAll(t *testing.T, e env) []map[string]types.AttributeValue {
	t.Helper()
	var items []map[string]types.AttributeValue
	p := dynamodb.NewScanPaginator(e.client, &dynamodb.ScanInput{TableName: aws.String(e.table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("scan: %v", err)
		}
		items = append(items, out.Items...)
	}
	return items
}

func TestNewRejectsIncompleteConfig(t *testing.T) {
	sealer, err := seal.NewAESGCM(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	client := dynamodb.New(dynamodb.Options{Region: "us-east-1"})
	core, err := dynamo.NewCore(client, "t")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		new  func() error
	}{
		{"no client", func() error { _, err := dynamo.NewCore(nil, "t"); return err }},
		{"no table", func() error { _, err := dynamo.NewCore(client, ""); return err }},
		{"tokens without a sealer", func() error { _, err := dynamo.NewTokens(core, nil, 0); return err }},
		{"negative limit", func() error { _, err := dynamo.NewTokens(core, sealer, -1); return err }},
		{"keys without a sealer", func() error { _, err := dynamo.NewKeys(core, nil); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.new(); err == nil {
				t.Error("got nil error")
			}
		})
	}
}

func TestCRUDRoundTrip(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	in := mustTokens(t, "alice", spec("work", 2))
	created := mustCreate(t, e.tokens, "alice", in)

	if got, want := ids(created), []int64{1, 2}; !slices.Equal(got, want) {
		t.Fatalf("created ids = %v, want %v", got, want)
	}
	for i, c := range created {
		want := in[i]
		want.ID = c.ID
		if !reflect.DeepEqual(c, want) {
			t.Errorf("created[%d] = %+v, want %+v", i, c, want)
		}
		got, err := e.tokens.Get(ctx, "alice", c.ID)
		if err != nil {
			t.Fatalf("Get(%d): %v", c.ID, err)
		}
		if got.Key != "" || got.KeyMask != token.MaskKey(c.Key) {
			t.Errorf("Get(%d): Key %q KeyMask %q, want empty and %q", c.ID, got.Key, got.KeyMask, token.MaskKey(c.Key))
		}
		if !reflect.DeepEqual(got, masked(c)) {
			t.Errorf("Get(%d) = %+v, want %+v", c.ID, got, masked(c))
		}
	}

	page, err := e.tokens.List(ctx, "alice", 1, 10)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if page.Total != 2 || !slices.Equal(ids(page.Items), []int64{2, 1}) {
		t.Fatalf("List = total %d ids %v, want 2 [2 1]", page.Total, ids(page.Items))
	}

	name := "renamed"
	updated, err := e.tokens.Update(ctx, "alice", 1, token.Patch{Name: &name}, now)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if updated.Name != name {
		t.Errorf("Update: name %q, want %q", updated.Name, name)
	}

	if err := e.tokens.Delete(ctx, "alice", 2); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err = e.tokens.Get(ctx, "alice", 2)
	wantCode(t, "Get after Delete", err, token.ENotFound)
	wantCode(t, "second Delete", e.tokens.Delete(ctx, "alice", 2), token.ENotFound)

	page, err = e.tokens.List(ctx, "alice", 1, 10)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if page.Total != 1 || !slices.Equal(ids(page.Items), []int64{1}) || page.Items[0].Name != name {
		t.Fatalf("List after delete = total %d items %+v, want 1 token named %q", page.Total, page.Items, name)
	}
	if got := countLookupItems(t, e); got != 1 {
		t.Errorf("key lookup items = %d, want 1", got)
	}
}

func TestIDsAreNeverReused(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	mustCreate(t, e.tokens, "u1", mustTokens(t, "u1", spec("a", 3)))
	if err := e.tokens.Delete(ctx, "u1", 3); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if n, err := e.tokens.DeleteMany(ctx, "u1", []int64{1, 2}); err != nil || n != 2 {
		t.Fatalf("DeleteMany = %d, %v; want 2, nil", n, err)
	}
	got := mustCreate(t, e.tokens, "u1", mustTokens(t, "u1", spec("b", 2)))
	if want := []int64{4, 5}; !slices.Equal(ids(got), want) {
		t.Errorf("ids after deleting every token = %v, want %v", ids(got), want)
	}
	// Ids are per user.
	other := mustCreate(t, e.tokens, "u2", mustTokens(t, "u2", spec("c", 1)))
	if other[0].ID != 1 {
		t.Errorf("another user's first id = %d, want 1", other[0].ID)
	}
}

func TestOtherUserChangesNothing(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	mine := mustCreate(t, e.tokens, "owner", mustTokens(t, "owner", spec("mine", 2)))
	disable := token.StatusDisabled
	name := "stolen"

	_, err := e.tokens.Get(ctx, "intruder", mine[0].ID)
	wantCode(t, "Get", err, token.ENotFound)
	_, err = e.tokens.Update(ctx, "intruder", mine[0].ID, token.Patch{Name: &name, Status: &disable}, now)
	wantCode(t, "Update", err, token.ENotFound)
	wantCode(t, "Delete", e.tokens.Delete(ctx, "intruder", mine[0].ID), token.ENotFound)
	n, err := e.tokens.DeleteMany(ctx, "intruder", ids(mine))
	if err != nil || n != 0 {
		t.Fatalf("DeleteMany = %d, %v; want 0, nil", n, err)
	}

	for _, m := range mine {
		got, err := e.tokens.Get(ctx, "owner", m.ID)
		if err != nil {
			t.Fatalf("Get(%d): %v", m.ID, err)
		}
		if !reflect.DeepEqual(got, masked(m)) {
			t.Errorf("token %d changed: %+v, want %+v", m.ID, got, masked(m))
		}
	}
	if page, err := e.tokens.List(ctx, "owner", 1, 10); err != nil || page.Total != 2 {
		t.Errorf("owner's List total = %d, %v; want 2", page.Total, err)
	}
	if page, err := e.tokens.List(ctx, "intruder", 1, 10); err != nil || page.Total != 0 || len(page.Items) != 0 {
		t.Errorf("intruder's List = %+v, %v; want empty", page, err)
	}
	if got := countTokenItems(t, e, "intruder"); got != 0 {
		t.Errorf("intruder has %d token items, want 0", got)
	}
}

func TestCreateConcurrentLimit(t *testing.T) {
	const limit, callers = 40, 50
	e := newEnv(t, limit)
	errs := make([]error, callers)
	results := make([][]token.Token, callers)
	var wg sync.WaitGroup
	for i := range callers {
		toks := mustTokens(t, "busy", spec(fmt.Sprintf("t%d", i), 1))
		wg.Go(func() { results[i], errs[i] = e.tokens.Create(context.Background(), "busy", toks) })
	}
	wg.Wait()

	var ok, limited int
	var got []int64
	for i, err := range errs {
		switch token.ErrorCode(err) {
		case "":
			ok++
			got = append(got, results[i][0].ID)
		case token.ETokenLimit:
			limited++
		default:
			t.Errorf("caller %d: %v", i, err)
		}
	}
	if ok != limit || limited != callers-limit {
		t.Fatalf("%d created, %d limited; want %d and %d", ok, limited, limit, callers-limit)
	}
	slices.Sort(got)
	if want := seq(1, 1, limit); !slices.Equal(got, want) {
		t.Errorf("ids = %v, want %v", got, want)
	}
	page, err := e.tokens.List(context.Background(), "busy", 1, 5)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if real := countTokenItems(t, e, "busy"); page.Total != limit || real != limit {
		t.Errorf("List total %d, token items %d; want %d", page.Total, real, limit)
	}
	_, err = e.tokens.Create(context.Background(), "busy", mustTokens(t, "busy", spec("one-more", 1)))
	wantCode(t, "Create over the limit", err, token.ETokenLimit)
}

func TestCreateConcurrentUnderLimit(t *testing.T) {
	const callers = 40
	e := newEnv(t, 0)
	var wg sync.WaitGroup
	errs := make([]error, callers)
	results := make([][]token.Token, callers)
	for i := range callers {
		toks := mustTokens(t, "u", spec(fmt.Sprintf("t%d", i), 1))
		wg.Go(func() { results[i], errs[i] = e.tokens.Create(context.Background(), "u", toks) })
	}
	wg.Wait()
	var got []int64
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
		got = append(got, results[i][0].ID)
	}
	slices.Sort(got)
	if want := seq(1, 1, callers); !slices.Equal(got, want) {
		t.Errorf("ids = %v, want %v", got, want)
	}
	page, err := e.tokens.List(context.Background(), "u", 1, 1)
	if err != nil || page.Total != callers {
		t.Errorf("List total = %d, %v; want %d", page.Total, err, callers)
	}
}

func TestDeleteManyConcurrentOverlap(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	mustCreate(t, e.tokens, "u", mustTokens(t, "u", spec("a", 49)))
	mustCreate(t, e.tokens, "u", mustTokens(t, "u", spec("b", 11)))
	// Overlapping sets, two of them longer than one transaction.
	sets := [][]int64{
		seq(1, 1, 55),         // 1..55
		seq(30, 1, 31),        // 30..60
		seq(2, 2, 25),         // evens 2..50
		{60, 59, 1, 1, 58, 7}, // duplicates are ignored
		seq(100, 1, 5),        // never existed
	}
	unique := map[int64]bool{}
	for _, s := range sets {
		for _, id := range s {
			if id <= 60 {
				unique[id] = true
			}
		}
	}
	counts := make([]int, len(sets))
	errs := make([]error, len(sets))
	var wg sync.WaitGroup
	for i, s := range sets {
		wg.Go(func() { counts[i], errs[i] = e.tokens.DeleteMany(ctx, "u", s) })
	}
	wg.Wait()
	sum := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("DeleteMany %d: %v", i, err)
		}
		sum += counts[i]
	}
	if sum != len(unique) {
		t.Errorf("deleted counts %v add up to %d, want %d", counts, sum, len(unique))
	}
	page, err := e.tokens.List(ctx, "u", 1, 100)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	real := countTokenItems(t, e, "u")
	if want := 60 - len(unique); page.Total != want || real != want || len(page.Items) != want {
		t.Errorf("List total %d (%d items), token items %d; want %d", page.Total, len(page.Items), real, want)
	}
	if got := countLookupItems(t, e); got != real {
		t.Errorf("key lookup items = %d, want %d (one per token)", got, real)
	}
}

func TestDeleteManyInvalid(t *testing.T) {
	e := newEnv(t, 0)
	tests := []struct {
		name string
		ids  []int64
	}{
		{"empty", nil},
		{"zero id", []int64{1, 0}},
		{"too many", seq(1, 1, token.MaxBatchIDs+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.tokens.DeleteMany(context.Background(), "u", tt.ids)
			wantCode(t, "DeleteMany", err, token.EInvalidRequest)
		})
	}
}

func TestCreateMaxCount(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	got := mustCreate(t, e.tokens, "u", mustTokens(t, "u", spec("bulk", token.MaxCount)))
	if want := seq(1, 1, token.MaxCount); !slices.Equal(ids(got), want) {
		t.Errorf("ids = %v, want %v", ids(got), want)
	}
	if got[1].Name != "bulk-2" {
		t.Errorf("second name = %q, want bulk-2", got[1].Name)
	}
	page, err := e.tokens.List(ctx, "u", 1, 1)
	if err != nil || page.Total != token.MaxCount {
		t.Errorf("List total = %d, %v; want %d", page.Total, err, token.MaxCount)
	}
	if real := countTokenItems(t, e, "u"); real != token.MaxCount {
		t.Errorf("token items = %d, want %d", real, token.MaxCount)
	}

	tests := []struct {
		name  string
		count int
	}{
		{"none", 0},
		{"one too many", token.MaxCount + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var toks []token.Token
			if tt.count > 0 {
				toks = mustTokens(t, "u", spec("x", tt.count))
			}
			_, err := e.tokens.Create(ctx, "u", toks)
			wantCode(t, "Create", err, token.EInvalidCount)
		})
	}
}

func TestCreateLimitReachedWritesNothing(t *testing.T) {
	e := newEnv(t, 5)
	ctx := context.Background()
	mustCreate(t, e.tokens, "u", mustTokens(t, "u", spec("a", 3)))
	_, err := e.tokens.Create(ctx, "u", mustTokens(t, "u", spec("b", 3)))
	wantCode(t, "Create past the limit", err, token.ETokenLimit)
	got := mustCreate(t, e.tokens, "u", mustTokens(t, "u", spec("c", 2)))
	if want := []int64{4, 5}; !slices.Equal(ids(got), want) {
		t.Errorf("ids = %v, want %v (a refused create takes no ids)", ids(got), want)
	}
}

func ptr[T any](v T) *T { return &v }

func TestNoPlaintextKeyStored(t *testing.T) {
	e := newEnv(t, 0)
	created := mustCreate(t, e.tokens, "u", mustTokens(t, "u", spec("k", 5)))
	var bodies []string
	for _, c := range created {
		bodies = append(bodies, strings.TrimPrefix(c.Key, "sk-"))
	}
	items := scanAll(t, e)
	if len(items) != 2*len(created)+1 {
		t.Fatalf("scan found %d items, want %d", len(items), 2*len(created)+1)
	}
	var check func(path string, av types.AttributeValue)
	check = func(path string, av types.AttributeValue) {
		var s string
		switch v := av.(type) {
		case *types.AttributeValueMemberS:
			s = v.Value
		case *types.AttributeValueMemberB:
			s = string(v.Value)
		case *types.AttributeValueMemberL:
			for i, x := range v.Value {
				check(fmt.Sprintf("%s[%d]", path, i), x)
			}
		case *types.AttributeValueMemberM:
			for k, x := range v.Value {
				check(path+"."+k, x)
			}
		case *types.AttributeValueMemberSS:
			s = strings.Join(v.Value, "\x00")
		}
		for _, b := range bodies {
			if strings.Contains(s, b) {
				t.Errorf("attribute %s holds a full key", path)
			}
		}
	}
	for _, item := range items {
		for name, av := range item {
			check(name, av)
		}
	}
}

func TestSealedKeyOpensOnlyInItsItem(t *testing.T) {
	e := newEnv(t, 0)
	created := mustCreate(t, e.tokens, "u", mustTokens(t, "u", spec("k", 2)))
	sealedOf := map[string][]byte{}
	for _, item := range scanAll(t, e) {
		sk := item["sk"].(*types.AttributeValueMemberS).Value
		if b, ok := item["key_sealed"].(*types.AttributeValueMemberB); ok {
			sealedOf[sk] = b.Value
		}
	}
	ctx := context.Background()
	for _, c := range created {
		sk := fmt.Sprintf("TOKEN#%019d", c.ID)
		got, err := e.sealer.Open(ctx, sealedOf[sk], []byte("USER#u\x00"+sk))
		if err != nil || string(got) != c.Key {
			t.Errorf("token %d: sealed key does not open to its key (err %v)", c.ID, err)
		}
	}
	moved := fmt.Sprintf("TOKEN#%019d", created[1].ID)
	if _, err := e.sealer.Open(ctx, sealedOf[fmt.Sprintf("TOKEN#%019d", created[0].ID)], []byte("USER#u\x00"+moved)); err == nil {
		t.Error("a sealed key opened with another item's pk/sk")
	}
}

func TestAccessTokens(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	const hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	p := auth.Principal{UserID: "alice", Role: auth.RoleAdmin}
	if err := e.access.PutAccessToken(ctx, hash, p); err != nil {
		t.Fatalf("PutAccessToken: %v", err)
	}
	if err := e.access.PutAccessToken(ctx, hash, auth.Principal{UserID: "mallory", Role: auth.RoleAdmin}); err == nil {
		t.Error("PutAccessToken over an existing hash: got nil error")
	}
	got, err := e.access.LookupAccessToken(ctx, hash)
	if err != nil || got != p {
		t.Fatalf("LookupAccessToken = %+v, %v; want %+v", got, err, p)
	}
	if _, err := e.access.LookupAccessToken(ctx, strings.Repeat("f", 64)); !errors.Is(err, auth.ErrUnknown) {
		t.Errorf("LookupAccessToken(unknown) error = %v, want ErrUnknown", err)
	}
	if err := e.access.RevokeAccessToken(ctx, hash); err != nil {
		t.Fatalf("RevokeAccessToken: %v", err)
	}
	if _, err := e.access.LookupAccessToken(ctx, hash); !errors.Is(err, auth.ErrUnknown) {
		t.Errorf("LookupAccessToken after revoke error = %v, want ErrUnknown", err)
	}
	if err := e.access.RevokeAccessToken(ctx, hash); err != nil {
		t.Errorf("second RevokeAccessToken: %v", err)
	}
	tests := []struct {
		name string
		p    auth.Principal
	}{
		{"bad user id", auth.Principal{UserID: "a#b", Role: auth.RoleUser}},
		{"unknown role", auth.Principal{UserID: "bob", Role: "root"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := e.access.PutAccessToken(ctx, strings.Repeat("a", 64), tt.p); err == nil {
				t.Error("PutAccessToken: got nil error")
			}
		})
	}
}
