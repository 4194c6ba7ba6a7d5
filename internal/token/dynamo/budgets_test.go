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

	"github.com/llmgw/token-service/internal/token"
)

// TestBudgetsStoredAndUpdated pins the stored form of spend windows and
// what an update writes of them, on the raw item, with the DynamoDB
// requests each update costs: a new limit keeps used (bu_<period>), 0
// removes a window's limit and state, the same zone keeps the state (one
// UpdateItem), a new zone clears every window's state in the write that
// sets it (the first, conditioned on the zone the patch names, is refused
// and tells the stored one).
func TestBudgetsStoredAndUpdated(t *testing.T) {
	ctx := context.Background()
	at := time.Unix(1_800_000_000, 0)
	s, counter, raw, table := countedContractStores(t)
	spec := token.Spec{Name: "w", Count: 1, ExpiredTime: token.NeverExpires, UnlimitedQuota: true,
		Budgets: token.Budgets{token.PeriodDay: 100_000, token.PeriodMinute: 5_000}, BudgetTimezone: "Asia/Shanghai"}
	toks, err := spec.Tokens("u1", at)
	if err != nil {
		t.Fatal(err)
	}
	plainToks, err := token.Spec{Name: "plain", Count: 1, ExpiredTime: token.NeverExpires}.Tokens("u1", at)
	if err != nil {
		t.Fatal(err)
	}
	created, err := s.Tokens.Create(ctx, "u1", append(toks, plainToks...))
	if err != nil {
		t.Fatal(err)
	}
	tok, plain := created[0], created[1]

	wantAttrs(t, "created", budgetAttrs(t, raw, table, tok), map[string]string{
		"btz": "Asia/Shanghai", "bl_day": "100000", "bl_minute": "5000"})
	wantAttrs(t, "a token without budgets", budgetAttrs(t, raw, table, plain), map[string]string{})

	dayStart, minuteStart := at.Unix()-3600, at.Unix()
	writeWindows(t, raw, table, "u1", tok.ID, map[token.Period]token.BudgetWindow{
		token.PeriodDay: {Start: dayStart, Used: 300}, token.PeriodMinute: {Start: minuteStart, Used: 20}})
	state := map[string]string{"bs_day": fmt.Sprint(dayStart), "bu_day": "300", "bs_minute": fmt.Sprint(minuteStart), "bu_minute": "20"}

	steps := []struct {
		name     string
		patch    token.Patch
		want     map[string]string
		requests int // UpdateItem requests
	}{
		{"a new limit keeps used", token.Patch{Budgets: &token.Budgets{token.PeriodDay: 200_000}},
			merge(state, map[string]string{"btz": "Asia/Shanghai", "bl_day": "200000", "bl_minute": "5000"}), 1},
		{"the same zone keeps the state", token.Patch{BudgetTimezone: ptr("Asia/Shanghai"), Name: ptr("x")},
			merge(state, map[string]string{"btz": "Asia/Shanghai", "bl_day": "200000", "bl_minute": "5000"}), 1},
		{"0 removes the window's limit and state", token.Patch{Budgets: &token.Budgets{token.PeriodMinute: 0, token.PeriodWeek: 9}},
			map[string]string{"btz": "Asia/Shanghai", "bl_day": "200000", "bl_week": "9", "bs_day": fmt.Sprint(dayStart), "bu_day": "300"}, 1},
		{"a new zone clears every window's state", token.Patch{BudgetTimezone: ptr("America/New_York")},
			map[string]string{"btz": "America/New_York", "bl_day": "200000", "bl_week": "9"}, 2},
		{"the default zone removes btz", token.Patch{BudgetTimezone: ptr("")},
			map[string]string{"bl_day": "200000", "bl_week": "9"}, 2},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.name == "a new zone clears every window's state" {
				// Charged again in the meantime.
				writeWindows(t, raw, table, "u1", tok.ID, map[token.Period]token.BudgetWindow{
					token.PeriodDay: {Start: dayStart, Used: 400}, token.PeriodWeek: {Start: dayStart, Used: 400}})
			}
			counter.Reset()
			got, err := s.Tokens.Update(ctx, "u1", tok.ID, st.patch, at)
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			if want := map[string]int{"UpdateItem": st.requests}; !maps.Equal(counter.Counts(), want) {
				t.Errorf("DynamoDB requests %v, want %v", counter.Counts(), want)
			}
			item := budgetAttrs(t, raw, table, tok)
			wantAttrs(t, "stored", item, st.want)
			if got.BudgetTimezone != st.want["btz"] {
				t.Errorf("Update returned zone %q, want %q", got.BudgetTimezone, st.want["btz"])
			}
		})
	}
}

// budgetAttrs reads tok's item and returns its spend-window attributes
// (btz, bl_*, bs_*, bu_*) as strings.
func budgetAttrs(t *testing.T, client *dynamodb.Client, table string, tok token.Token) map[string]string {
	t.Helper()
	out, err := client.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String(table),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: "USER#" + tok.UserID},
			"sk": &types.AttributeValueMemberS{Value: fmt.Sprintf("TOKEN#%019d", tok.ID)},
		},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil || out.Item == nil {
		t.Fatalf("read item: %v", err)
	}
	got := map[string]string{}
	for name, v := range out.Item {
		if name != "btz" && !strings.HasPrefix(name, "bl_") && !strings.HasPrefix(name, "bs_") && !strings.HasPrefix(name, "bu_") {
			continue
		}
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			got[name] = v.Value
		case *types.AttributeValueMemberN:
			got[name] = v.Value
		default:
			got[name] = fmt.Sprintf("%T", v)
		}
	}
	return got
}

func wantAttrs(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Errorf("%s: spend-window attributes %v, want %v", what, got, want)
	}
}

func merge(a, b map[string]string) map[string]string {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}
