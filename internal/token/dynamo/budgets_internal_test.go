package dynamo

import (
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/token"
)

// TestBudgetItemNames holds budgetItem's tags, which reads and creates use,
// to budgetAttrsOf's names, which updates (and verify) write.
func TestBudgetItemNames(t *testing.T) {
	tok := token.Token{Budgets: token.Budgets{}, Windows: map[token.Period]token.BudgetWindow{}, BudgetTimezone: "Asia/Tokyo"}
	for i, p := range token.Periods {
		n := int64(10 * (i + 1))
		tok.Budgets[p] = n
		tok.Windows[p] = token.BudgetWindow{Start: n + 1, Used: n + 2}
	}
	av, err := attributevalue.MarshalMap(toDBBudgets(tok))
	if err != nil {
		t.Fatal(err)
	}
	number := func(name string) int64 {
		t.Helper()
		v, ok := av[name].(*types.AttributeValueMemberN)
		if !ok {
			t.Fatalf("attribute %s missing or not a number: %v", name, av[name])
		}
		n, err := strconv.ParseInt(v.Value, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for i, p := range token.Periods {
		n, a := int64(10*(i+1)), budgetAttrsOf(p)
		if got := [3]int64{number(a.limit), number(a.start), number(a.used)}; got != [3]int64{n, n + 1, n + 2} {
			t.Errorf("%s: %s, %s, %s = %v, want %v", p, a.limit, a.start, a.used, got, [3]int64{n, n + 1, n + 2})
		}
	}
	if z, ok := av[attrBudgetTimezone].(*types.AttributeValueMemberS); !ok || z.Value != "Asia/Tokyo" {
		t.Errorf("%s = %v, want Asia/Tokyo", attrBudgetTimezone, av[attrBudgetTimezone])
	}
	if len(av) != 1+3*len(token.Periods) {
		t.Errorf("%d attributes, want %d: %v", len(av), 1+3*len(token.Periods), av)
	}
	var back budgetItem
	if err := attributevalue.UnmarshalMap(av, &back); err != nil {
		t.Fatal(err)
	}
	var got token.Token
	back.setOn(&got)
	if got.BudgetTimezone != tok.BudgetTimezone || len(got.Budgets) != 5 || len(got.Windows) != 5 {
		t.Errorf("round trip = %+v, want %+v", got, tok)
	}
	for _, p := range token.Periods {
		if got.Budgets[p] != tok.Budgets[p] || got.Windows[p] != tok.Windows[p] {
			t.Errorf("%s round trip: %d %v, want %d %v", p, got.Budgets[p], got.Windows[p], tok.Budgets[p], tok.Windows[p])
		}
	}
}
