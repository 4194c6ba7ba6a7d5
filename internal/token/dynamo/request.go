package dynamo

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/token"
)

// The request record of a request id R on one token (README "The events
// and answers", request_id): its own partition, outside the user's, so that list and search
// never read it and a busy token's records spread over partitions:
//
//	request     pk REQ#<uid>#<token id>#<R>   sk REQ
//
// User ids hold no '#' (auth.CheckUserID) and R none either
// (token.CheckRequestID), so the key names one (user, token, R) only.
const (
	requestPrefix = "REQ#"
	requestSK     = "REQ"
	attrRev       = "rev"
	// attrRequestWindows holds the spend windows that count the request's
	// charge; absent when none does.
	attrRequestWindows = "win"
)

func requestPK(userID string, tokenID int64, requestID string) string {
	return requestPrefix + userID + "#" + strconv.FormatInt(tokenID, 10) + "#" + requestID
}

func requestKey(userID string, tokenID int64, requestID string) map[string]types.AttributeValue {
	return itemKey(requestPK(userID, tokenID, requestID), requestSK)
}

func isRequest(av map[string]types.AttributeValue) bool {
	sk, ok := av[SortKey].(*types.AttributeValueMemberS)
	return ok && sk.Value == requestSK
}

// requestItem is a request record as stored: amounts and a compact answer,
// a few hundred bytes. expires_at is the table's TTL attribute; TTL deletes
// late, so every read and write condition checks it too.
type requestItem struct {
	PK         string     `dynamodbav:"pk"`
	SK         string     `dynamodbav:"sk"`
	State      string     `dynamodbav:"state"`
	Event      string     `dynamodbav:"event"`
	Charged    int64      `dynamodbav:"charged"`
	FromRemain int64      `dynamodbav:"from_remain"`
	Delta      int64      `dynamodbav:"delta"`
	Shortfall  int64      `dynamodbav:"shortfall"`
	Answer     answerItem `dynamodbav:"answer"`
	Rev        int64      `dynamodbav:"rev"`
	ExpiresAt  int64      `dynamodbav:"expires_at"`
	// Windows maps a period to the window (start) that counted the
	// request's charge and how much of it: at most five small entries.
	Windows map[string]windowItem `dynamodbav:"win,omitempty"`
}

// windowItem is one entry of a record's spend windows (token.CountedWindow).
type windowItem struct {
	Start int64 `dynamodbav:"s"`
	Used  int64 `dynamodbav:"u"`
	Gen   int64 `dynamodbav:"g,omitempty"` // the token's bgen when counted
}

// answerItem is the token of a recorded answer (token.AnsweredToken).
type answerItem struct {
	Name               string `dynamodbav:"name"`
	Group              string `dynamodbav:"group"`
	Status             int    `dynamodbav:"status"`
	RemainQuota        int64  `dynamodbav:"remain_quota"`
	UsedQuota          int64  `dynamodbav:"used_quota"`
	UnlimitedQuota     bool   `dynamodbav:"unlimited_quota"`
	ModelLimitsEnabled bool   `dynamodbav:"model_limits_enabled"`
	ExpiredTime        int64  `dynamodbav:"expired_time"`
	RPMLimit           int64  `dynamodbav:"rpm_limit"`
}

func toDBRequest(r token.Request) requestItem {
	a := r.Answered
	var windows map[string]windowItem
	for _, p := range token.Periods {
		if w := r.Windows.Of(p); w != (token.CountedWindow{}) {
			if windows == nil {
				windows = map[string]windowItem{}
			}
			windows[string(p)] = windowItem{Start: w.Start, Used: w.Used, Gen: w.Gen}
		}
	}
	return requestItem{
		State: string(r.State), Event: r.Event, Charged: r.Charged, FromRemain: r.FromRemain,
		Delta: r.Delta, Shortfall: r.Shortfall, Rev: r.Rev, ExpiresAt: r.ExpiresAt, Windows: windows,
		Answer: answerItem{
			Name: a.Name, Group: a.Group, Status: int(a.Status), RemainQuota: a.RemainQuota, UsedQuota: a.UsedQuota,
			UnlimitedQuota: a.UnlimitedQuota, ModelLimitsEnabled: a.ModelLimitsEnabled, ExpiredTime: a.ExpiredTime, RPMLimit: a.RPMLimit,
		},
	}
}

func decodeRequest(av map[string]types.AttributeValue) (*token.Request, error) {
	var it requestItem
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return nil, fmt.Errorf("decode request record: %w", err)
	}
	i := strings.LastIndexByte(it.PK, '#')
	if !strings.HasPrefix(it.PK, requestPrefix) || i < 0 {
		return nil, errors.New("decode request record: malformed key")
	}
	a := it.Answer
	var windows token.RequestWindows
	for p, w := range it.Windows {
		windows.Set(token.Period(p), token.CountedWindow{Start: w.Start, Used: w.Used, Gen: w.Gen})
	}
	return &token.Request{
		ID: it.PK[i+1:], State: token.RequestState(it.State), Event: it.Event,
		Charged: it.Charged, FromRemain: it.FromRemain, Delta: it.Delta, Shortfall: it.Shortfall,
		Rev: it.Rev, ExpiresAt: it.ExpiresAt, Windows: windows,
		Answered: token.AnsweredToken{
			Name: a.Name, Group: a.Group, Status: token.Status(a.Status), RemainQuota: a.RemainQuota, UsedQuota: a.UsedQuota,
			UnlimitedQuota: a.UnlimitedQuota, ModelLimitsEnabled: a.ModelLimitsEnabled, ExpiredTime: a.ExpiredTime, RPMLimit: a.RPMLimit,
		},
	}, nil
}

// requestWrite is the conditional update that leaves the record as rec: it
// sets every attribute of the item (so that it also replaces an expired
// record TTL has not deleted yet), on the condition that the stored record
// is still read when read was live at now, or that none is live (absent,
// or expired at now) when it was not.
func requestWrite(read, rec *token.Request, now time.Time) (expression.Expression, error) {
	var cond expression.ConditionBuilder
	if live := read.Live(now); live != nil {
		cond = expression.Name(attrRev).Equal(expression.Value(live.Rev)).
			And(expression.Name(attrExpiresAt).GreaterThan(expression.Value(now.Unix())))
	} else {
		cond = expression.AttributeNotExists(expression.Name(PartitionKey)).
			Or(expression.Name(attrExpiresAt).LessThanEqual(expression.Value(now.Unix())))
	}
	av, err := attributevalue.MarshalMap(toDBRequest(*rec))
	if err != nil {
		return expression.Expression{}, fmt.Errorf("marshal request record: %w", err)
	}
	var update expression.UpdateBuilder
	for _, name := range slices.Sorted(maps.Keys(av)) {
		if name != PartitionKey && name != SortKey {
			update = update.Set(expression.Name(name), expression.Value(av[name]))
		}
	}
	if _, ok := av[attrRequestWindows]; !ok {
		// An expired record replaced may hold windows of its own.
		update = update.Remove(expression.Name(attrRequestWindows))
	}
	return expression.NewBuilder().WithCondition(cond).WithUpdate(update).Build()
}
