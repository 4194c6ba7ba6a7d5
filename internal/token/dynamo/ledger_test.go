package dynamo_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/ddbcount"
	"github.com/llmgw/token-service/internal/token"
)

// The request record's writes and reads: one BatchGetItem reads the token,
// the user and the record; one TransactWriteItems writes the token and the
// record. The record lives in its own partition (list and search never see
// it) and stays well under 1 KB at the longest user id, request id and
// name.
func TestLedgerRequestRecord(t *testing.T) {
	e := newEnv(t, 0)
	var counter ddbcount.Counter
	store := newParts(t, dynamodb.New(e.client.Options(), counter.Option), e.table, e.sealer, 0)
	ctx := context.Background()
	user := strings.Repeat("u", 64)
	s := spec("name", 1)
	s.Name = strings.Repeat("名", token.MaxNameLength)
	tok := mustCreate(t, store.tokens, user, mustTokens(t, user, s))[0]
	id := strings.Repeat("r", token.MaxRequestIDLength)

	counter.Reset()
	read, err := store.ledger.ReadForVerify(ctx, user, tok.ID, id)
	if err != nil || read.Request != nil {
		t.Fatalf("ReadForVerify: %+v, %v; want no record", read.Request, err)
	}
	rec := &token.Request{ID: id, State: token.RequestHeld, Event: strings.Repeat("e", 22), Charged: token.MaxQuota, FromRemain: token.MaxQuota,
		Delta: token.MaxQuota, Rev: 1, ExpiresAt: now.Unix() + token.DefaultRequestRecordSeconds,
		Answered: token.AnsweredAt(tok, now)}
	for _, p := range token.Periods { // every window counting it, at the largest numbers
		rec.Windows.Set(p, token.CountedWindow{Start: now.Unix(), Used: token.MaxQuota, Gen: token.MaxQuota})
	}
	// A settle of what is left, recorded: the largest numbers a record holds.
	next, written, err := store.ledger.Write(ctx, read, token.Write{Settle: 1000, Record: rec}, now)
	if err != nil || !written {
		t.Fatalf("Write: %v, %v", written, err)
	}
	if got, want := counter.Counts(), map[string]int{"BatchGetItem": 1, "TransactWriteItems": 1}; !maps.Equal(got, want) {
		t.Errorf("read and write: requests %v, want %v", got, want)
	}
	if next.Token.RemainQuota != 0 || next.Token.UsedQuota != 1000 || next.Request == nil || *next.Request != *rec {
		t.Errorf("state after the write %+v", next)
	}

	again, err := store.ledger.ReadForVerify(ctx, user, tok.ID, id)
	if err != nil || again.Request == nil || *again.Request != *rec {
		t.Fatalf("record read back %+v, %v; want %+v", again.Request, err, rec)
	}
	if again.Token.RemainQuota != 0 || again.Token.UsedQuota != 1000 {
		t.Errorf("token read back: remain %d used %d, want 0, 1000", again.Token.RemainQuota, again.Token.UsedQuota)
	}

	// A write decided on "no record" fails while the record lives, and
	// returns it as it is; the token is left alone.
	_, written, err = store.ledger.Write(ctx, read, token.Write{Record: rec}, now)
	if err != nil || written {
		t.Errorf("a second first write: written %v, %v; want refused", written, err)
	}

	items := scanRecords(t, e)
	var size int
	for _, it := range items {
		pk := it["pk"].(*types.AttributeValueMemberS).Value
		if strings.HasPrefix(pk, "REQ#") {
			size = ddbcount.ItemSize(it)
			if want := "REQ#" + user + "#1#" + id; pk != want {
				t.Errorf("record pk %q, want %q", pk, want)
			}
		}
	}
	if size == 0 || size > 1024 {
		t.Errorf("record item of %d bytes, want at most 1 KB (1 write unit)", size)
	}
	page, err := store.tokens.List(ctx, user, 1, 100)
	if err != nil || page.Total != 1 || len(page.Items) != 1 {
		t.Errorf("list beside a record: %d items, total %d, %v; want 1", len(page.Items), page.Total, err)
	}
}

func scanRecords(t *testing.T, e env) []map[string]types.AttributeValue {
	t.Helper()
	out, err := e.client.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(e.table)})
	if err != nil {
		t.Fatal(err)
	}
	return out.Items
}

// A record replacing an expired one (TTL deletes late) keeps none of its
// spend windows: a give-back through the new request returns only what it
// counted itself.
func TestLedgerReplacedRecordDropsWindows(t *testing.T) {
	e := newEnv(t, 0)
	store := newParts(t, e.client, e.table, e.sealer, 0)
	ctx := context.Background()
	tok := mustCreate(t, store.tokens, "u1", mustTokens(t, "u1", spec("t", 1)))[0]
	old := &token.Request{ID: "r", State: token.RequestHeld, Event: "e", Charged: 10, Rev: 1, ExpiresAt: now.Unix() + 60}
	old.Windows.Set(token.PeriodDay, token.CountedWindow{Start: now.Unix(), Used: 10})
	read, err := store.ledger.ReadForVerify(ctx, "u1", tok.ID, "r")
	if err != nil {
		t.Fatal(err)
	}
	if _, written, err := store.ledger.Write(ctx, read, token.Write{Record: old}, now); err != nil || !written {
		t.Fatalf("first record: %v, %v", written, err)
	}
	later := now.Add(time.Minute)
	read, err = store.ledger.ReadForVerify(ctx, "u1", tok.ID, "r")
	if err != nil || read.Request == nil || read.Request.Windows != old.Windows {
		t.Fatalf("record read back %+v, %v", read.Request, err)
	}
	fresh := &token.Request{ID: "r", State: token.RequestSettled, Event: "f", Rev: 2, ExpiresAt: later.Unix() + 60}
	if _, written, err := store.ledger.Write(ctx, read, token.Write{Record: fresh}, later); err != nil || !written {
		t.Fatalf("replacing the expired record: %v, %v", written, err)
	}
	again, err := store.ledger.ReadForVerify(ctx, "u1", tok.ID, "r")
	if err != nil || again.Request == nil || *again.Request != *fresh {
		t.Errorf("replaced record %+v, %v; want %+v", again.Request, err, fresh)
	}
}

// A token item verify cannot decode (here one written by hand without a
// key hash) is token_unreadable there too, never a zero token.
func TestReadForVerifyUnreadableToken(t *testing.T) {
	e := newEnv(t, 0)
	const id = 7
	_, err := e.client.PutItem(context.Background(), &dynamodb.PutItemInput{
		TableName: aws.String(e.table),
		Item: map[string]types.AttributeValue{
			"pk":           &types.AttributeValueMemberS{Value: "USER#u1"},
			"sk":           &types.AttributeValueMemberS{Value: fmt.Sprintf("TOKEN#%019d", id)},
			"id":           &types.AttributeValueMemberN{Value: "7"},
			"name":         &types.AttributeValueMemberS{Value: "by hand"},
			"remain_quota": &types.AttributeValueMemberN{Value: "100"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.ledger.ReadForVerify(context.Background(), "u1", id, "")
	if token.ErrorCode(err) != token.ETokenUnreadable {
		t.Fatalf("ReadForVerify: %+v, %v; want %s", st.Token, err, token.ETokenUnreadable)
	}
}

// Touch through the key a rotation replaced records the access while its
// grace lasts, and not after.
func TestLedgerTouchThroughOldKey(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	tok := mustCreate(t, e.tokens, "u1", mustTokens(t, "u1", spec("t", 1)))[0]
	key, err := token.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.keys.Rotate(ctx, "u1", tok.ID, key, time.Hour, now); err != nil {
		t.Fatal(err)
	}
	accessed := func() int64 {
		got, err := e.tokens.Get(ctx, "u1", tok.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.AccessedTime
	}
	inGrace := now.Add(2 * time.Minute)
	if err := e.ledger.Touch(ctx, "u1", tok.ID, tok.KeyHash, inGrace); err != nil {
		t.Fatal(err)
	}
	if got := accessed(); got != inGrace.Unix() {
		t.Errorf("accessed_time after a touch in grace = %d, want %d", got, inGrace.Unix())
	}
	if err := e.ledger.Touch(ctx, "u1", tok.ID, tok.KeyHash, now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := accessed(); got != inGrace.Unix() {
		t.Errorf("accessed_time after a touch past grace = %d, want %d", got, inGrace.Unix())
	}
}
