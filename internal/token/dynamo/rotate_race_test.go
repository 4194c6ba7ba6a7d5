package dynamo_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/token/dynamo"
)

// rotationTrace records what one Rotate call saw and wrote: the key_hash
// its first read found and the old hash of the transaction that committed
// (the lookup item it deleted: grace 0).
type rotationTrace struct {
	barrier   *sync.WaitGroup // if set, the first read waits for every rotation's first read
	reads     int
	firstRead string
	from      string
}

type traceKey struct{}

// tracingAPI is the real client, recording into the rotationTrace of each
// call's context.
type tracingAPI struct {
	dynamo.API
}

func (a tracingAPI) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	out, err := a.API.GetItem(ctx, in, opts...)
	tr, _ := ctx.Value(traceKey{}).(*rotationTrace)
	if err != nil || tr == nil {
		return out, err
	}
	tr.reads++
	if tr.reads == 1 {
		if h, ok := out.Item["key_hash"].(*types.AttributeValueMemberS); ok {
			tr.firstRead = h.Value
		}
		if tr.barrier != nil {
			tr.barrier.Done()
			tr.barrier.Wait()
		}
	}
	return out, err
}

func (a tracingAPI) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	out, err := a.API.TransactWriteItems(ctx, in, opts...)
	tr, _ := ctx.Value(traceKey{}).(*rotationTrace)
	if err != nil || tr == nil {
		return out, err
	}
	for _, item := range in.TransactItems {
		if item.Delete == nil {
			continue
		}
		if pk, ok := item.Delete.Key["pk"].(*types.AttributeValueMemberS); ok && strings.HasPrefix(pk.Value, "KEY#") {
			tr.from = strings.TrimPrefix(pk.Value, "KEY#")
			break
		}
	}
	return out, err
}

type rotation struct {
	trace *rotationTrace
	tok   token.Token
	err   error
}

// rotateConcurrently runs n rotations of one token without grace at once.
func rotateConcurrently(t *testing.T, s *dynamo.Keys, id int64, n int, barrier bool) []rotation {
	t.Helper()
	var wg sync.WaitGroup
	var bar *sync.WaitGroup
	if barrier {
		bar = &sync.WaitGroup{}
		bar.Add(n)
	}
	out := make([]rotation, n)
	for i := range out {
		key, err := token.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		out[i].trace = &rotationTrace{barrier: bar}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.WithValue(context.Background(), traceKey{}, out[i].trace)
			out[i].tok, out[i].err = s.Rotate(ctx, "u1", id, key, 0, now)
		}()
	}
	wg.Wait()
	return out
}

// checkRotations checks that every rotation succeeded; that each one that
// committed did so from the key it first read (never from a key another
// caller was given meanwhile), and each one that did not (it joined a
// concurrent rotation) returned a key a committed rotation set; and that
// the commits chain from the token's key before them to its key after
// them, the only key with a lookup item. It returns the number of commits.
func checkRotations(t *testing.T, e env, id int64, before string, rs []rotation) int {
	t.Helper()
	next := map[string]string{}
	keys := map[string]bool{}
	var joined []token.Token
	for i, r := range rs {
		if r.err != nil {
			t.Errorf("rotation %d: %v, want success", i, r.err)
			continue
		}
		if r.trace.from == "" {
			joined = append(joined, r.tok)
			continue
		}
		if r.trace.from != r.trace.firstRead {
			t.Errorf("rotation %d committed from key %.8s but first read %.8s: it rotated a key another caller was given", i, r.trace.from, r.trace.firstRead)
		}
		if _, dup := next[r.trace.from]; dup {
			t.Errorf("two rotations committed from key %.8s", r.trace.from)
		}
		next[r.trace.from] = r.tok.KeyHash
		keys[r.tok.Key] = true
		if r.tok.KeyHash != token.HashKey(r.tok.Key) {
			t.Errorf("rotation %d returned key_hash %.8s not of its key", i, r.tok.KeyHash)
		}
	}
	if len(next) == 0 {
		t.Fatalf("no rotation succeeded: %+v", rs)
	}
	if len(keys) != len(next) {
		t.Errorf("%d commits returned %d distinct keys", len(next), len(keys))
	}
	for _, j := range joined {
		if !keys[j.Key] || j.KeyHash != token.HashKey(j.Key) {
			t.Errorf("a rotation that joined another returned key %.8s, which no committed rotation set", j.KeyHash)
		}
	}
	cur, steps := before, 0
	for ; steps <= len(next); steps++ {
		n, ok := next[cur]
		if !ok {
			break
		}
		cur = n
	}
	if steps != len(next) {
		t.Errorf("the %d successful rotations chain %d steps from the key before them", len(next), steps)
	}
	got, err := e.keys.RevealKey(context.Background(), "u1", id, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	if got.KeyHash != cur || !keys[got.Key] {
		t.Errorf("stored key %.8s is not the end of the chain %.8s, or not a returned key", got.KeyHash, cur)
	}
	var lookups []string
	for _, item := range scanAll(t, e) {
		if pk, ok := item["pk"].(*types.AttributeValueMemberS); ok && strings.HasPrefix(pk.Value, "KEY#") {
			lookups = append(lookups, strings.TrimPrefix(pk.Value, "KEY#"))
		}
	}
	if len(lookups) != 1 || lookups[0] != got.KeyHash {
		t.Errorf("lookup items %.8q, want only the current key's %.8s", lookups, got.KeyHash)
	}
	return len(next)
}

func TestConcurrentRotationsWithoutGrace(t *testing.T) {
	const n = 8
	e := newEnv(t, 1000)
	s := newParts(t, tracingAPI{e.client}, e.table, e.sealer, 0).keys
	tok := mustCreate(t, e.tokens, "u1", mustTokens(t, "u1", spec("r", 1)))[0]

	// Every rotation reads the same key before any writes: exactly one may
	// commit; the others must answer with its key rather than rotate it
	// away, which without grace would revoke it as its caller receives it.
	before := tok.KeyHash
	rs := rotateConcurrently(t, s, tok.ID, n, true)
	if wins := checkRotations(t, e, tok.ID, before, rs); wins != 1 {
		t.Errorf("rotations from one read key: %d committed, want exactly 1", wins)
	}

	// Unsynchronised rounds: whatever the interleaving, the invariants hold.
	for round := range 5 {
		cur, err := e.tokens.Get(context.Background(), "u1", tok.ID)
		if err != nil {
			t.Fatal(err)
		}
		rs := rotateConcurrently(t, s, tok.ID, n, false)
		t.Logf("round %d: %d of %d committed", round, checkRotations(t, e, tok.ID, cur.KeyHash, rs), n)
	}
}

// scriptedAPI answers Rotate's reads with items in turn (the last one
// repeats) and its transactions with errs in turn (nil once they run out).
type scriptedAPI struct {
	dynamo.API
	items   []map[string]types.AttributeValue
	errs    []error
	gets    int
	txCalls int
}

func (f *scriptedAPI) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	item := f.items[min(f.gets, len(f.items)-1)]
	f.gets++
	return &dynamodb.GetItemOutput{Item: item}, nil
}

func (f *scriptedAPI) TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	f.txCalls++
	if f.txCalls <= len(f.errs) {
		return nil, f.errs[f.txCalls-1]
	}
	return &dynamodb.TransactWriteItemsOutput{}, nil
}

// cancelled is a cancelled 4-action rotation, action 0 failing with code0
// and the last with codeLast.
func cancelled(code0, codeLast string) error {
	reasons := []types.CancellationReason{{Code: aws.String(code0)}, {Code: aws.String("None")}, {Code: aws.String("None")}, {Code: aws.String(codeLast)}}
	return &types.TransactionCanceledException{Message: aws.String("Transaction cancelled"), CancellationReasons: reasons}
}

func TestRotateRetriesOnlyTheKeyItRead(t *testing.T) {
	newKey, _ := token.NewKey()
	item := func(t *testing.T, hash string) map[string]types.AttributeValue {
		av, err := attributevalue.MarshalMap(map[string]any{
			"pk": "USER#u", "sk": "TOKEN#0000000000000000007", "id": 7, "user_id": "u", "key_hash": hash,
		})
		if err != nil {
			t.Fatal(err)
		}
		return av
	}
	tests := []struct {
		name        string
		hashes      []string // what each read finds
		errs        []error
		wantCode    string
		wantTxCalls int
	}{
		{"transaction conflict, key unchanged: retried", []string{"a", "a"}, []error{cancelled("None", "TransactionConflict")}, "", 2},
		{"key already the new one: done", []string{"a", token.HashKey(newKey)}, []error{cancelled("ConditionalCheckFailed", "None")}, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := &scriptedAPI{errs: tt.errs}
			for _, h := range tt.hashes {
				api.items = append(api.items, item(t, h))
			}
			s := newFakeStore(t, api)
			got, err := s.keys.Rotate(context.Background(), "u", 7, newKey, 0, now)
			if code := token.ErrorCode(err); code != tt.wantCode {
				t.Fatalf("Rotate error %v (code %q), want code %q", err, code, tt.wantCode)
			}
			if api.txCalls != tt.wantTxCalls {
				t.Errorf("TransactWriteItems called %d times, want %d", api.txCalls, tt.wantTxCalls)
			}
			if err == nil && (got.Key != newKey || got.KeyHash != token.HashKey(newKey) || got.ID != 7) {
				t.Errorf("Rotate = id %d key_hash %.8s, want token 7 with the new key", got.ID, got.KeyHash)
			}
		})
	}
}
