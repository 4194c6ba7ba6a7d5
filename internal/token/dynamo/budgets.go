package dynamo

import (
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"

	"github.com/llmgw/token-service/internal/token"
)

// A token's spend windows are top-level attributes of its item (README
// "Data model"): btz, the zone as the user wrote it (absent: the
// deployment's default), and for each period p with a window bl_<p>, its
// limit, and the state of the window verify last charged: bs_<p>, that
// window's start (Unix seconds, token.WindowAt), and bu_<p>, what it
// counted. Top-level, not a map: an update sets or removes one period
// without a read (a SET or REMOVE of a path inside a map fails when the map
// is missing, as it is on every item written before budgets), and verify
// can count a charge in one conditional write, as it counts rpm_limit
// (rpm_window, rpm_count). bgen is the windows' generation
// (token.Token.WindowGen), added to by every update that removes a
// window's state or changes the zone. Attributes are absent when zero, so
// an item without budgets is as small as before.
const (
	attrBudgetTimezone = "btz"
	attrBudgetGen      = "bgen"
)

// budgetAttrs are the attribute names of one period's window.
type budgetAttrs struct {
	limit string // bl_<period>: the limit, > 0
	start string // bs_<period>: the start of the window used counts
	used  string // bu_<period>: what that window counted
}

// budgetAttrsOf returns the attribute names of period p's window.
func budgetAttrsOf(p token.Period) budgetAttrs {
	return budgetAttrs{limit: "bl_" + string(p), start: "bs_" + string(p), used: "bu_" + string(p)}
}

// budgetItem is the spend-window part of a token item. Its tags must be
// budgetAttrsOf's names (TestBudgetItemNames).
type budgetItem struct {
	BudgetTimezone string `dynamodbav:"btz,omitempty"`
	WindowGen      int64  `dynamodbav:"bgen,omitempty"`

	LimitMinute int64 `dynamodbav:"bl_minute,omitempty"`
	StartMinute int64 `dynamodbav:"bs_minute,omitempty"`
	UsedMinute  int64 `dynamodbav:"bu_minute,omitempty"`
	LimitHour   int64 `dynamodbav:"bl_hour,omitempty"`
	StartHour   int64 `dynamodbav:"bs_hour,omitempty"`
	UsedHour    int64 `dynamodbav:"bu_hour,omitempty"`
	LimitDay    int64 `dynamodbav:"bl_day,omitempty"`
	StartDay    int64 `dynamodbav:"bs_day,omitempty"`
	UsedDay     int64 `dynamodbav:"bu_day,omitempty"`
	LimitWeek   int64 `dynamodbav:"bl_week,omitempty"`
	StartWeek   int64 `dynamodbav:"bs_week,omitempty"`
	UsedWeek    int64 `dynamodbav:"bu_week,omitempty"`
	LimitMonth  int64 `dynamodbav:"bl_month,omitempty"`
	StartMonth  int64 `dynamodbav:"bs_month,omitempty"`
	UsedMonth   int64 `dynamodbav:"bu_month,omitempty"`
}

// fields returns period p's limit, start and used fields.
func (b *budgetItem) fields(p token.Period) (limit, start, used *int64) {
	switch p {
	case token.PeriodMinute:
		return &b.LimitMinute, &b.StartMinute, &b.UsedMinute
	case token.PeriodHour:
		return &b.LimitHour, &b.StartHour, &b.UsedHour
	case token.PeriodDay:
		return &b.LimitDay, &b.StartDay, &b.UsedDay
	case token.PeriodWeek:
		return &b.LimitWeek, &b.StartWeek, &b.UsedWeek
	case token.PeriodMonth:
		return &b.LimitMonth, &b.StartMonth, &b.UsedMonth
	}
	var none [3]int64 // not a period: nothing is stored
	return &none[0], &none[1], &none[2]
}

// toDBBudgets is the spend-window part of t's item.
func toDBBudgets(t token.Token) budgetItem {
	b := budgetItem{BudgetTimezone: t.BudgetTimezone, WindowGen: t.WindowGen}
	for _, p := range token.Periods {
		limit, start, used := b.fields(p)
		*limit = t.Budgets[p]
		w := t.Windows[p]
		*start, *used = w.Start, w.Used
	}
	return b
}

// setOn sets the spend-window fields of t from b: nil maps when there are
// no budgets and no window state, as every read of such a token gives.
func (b budgetItem) setOn(t *token.Token) {
	t.BudgetTimezone, t.WindowGen = b.BudgetTimezone, b.WindowGen
	for _, p := range token.Periods {
		limit, start, used := b.fields(p)
		if *limit != 0 {
			if t.Budgets == nil {
				t.Budgets = token.Budgets{}
			}
			t.Budgets[p] = *limit
		}
		if *start != 0 || *used != 0 {
			if t.Windows == nil {
				t.Windows = map[token.Period]token.BudgetWindow{}
			}
			t.Windows[p] = token.BudgetWindow{Start: *start, Used: *used}
		}
	}
}

// genIs is the condition that the item's window generation is gen (0:
// absent).
func genIs(gen int64) expression.ConditionBuilder {
	name := expression.Name(attrBudgetGen)
	if gen == 0 {
		return expression.AttributeNotExists(name).Or(name.Equal(expression.Value(0)))
	}
	return name.Equal(expression.Value(gen))
}

// zoneIs is the condition that the item's zone is zone ("": none).
func zoneIs(zone string) expression.ConditionBuilder {
	name := expression.Name(attrBudgetTimezone)
	if zone == "" {
		return expression.AttributeNotExists(name).Or(name.Equal(expression.Value("")))
	}
	return name.Equal(expression.Value(zone))
}

// budgetUpdate adds to u what p sets of the spend windows, on an item whose
// zone is stored (the caller's condition holds it to that, zoneIs): each
// named period's limit, a 0 removing the limit and the window's state (a
// new limit keeps the state: used stays); and when p names a zone, the zone
// (set again when it is the same, so the update is never empty) and, when
// it is not stored, the removal of every window's state: a new zone starts
// every window afresh. Either adds 1 to bgen, as token.Patch.Apply does.
func budgetUpdate(u expression.UpdateBuilder, p token.Patch, stored string) expression.UpdateBuilder {
	bump := false
	removed := map[string]bool{}
	remove := func(name string) {
		if !removed[name] { // a path twice in one expression is refused
			removed[name] = true
			u = u.Remove(expression.Name(name))
		}
	}
	if p.Budgets != nil {
		for _, period := range token.Periods {
			n, ok := (*p.Budgets)[period]
			if !ok {
				continue
			}
			a := budgetAttrsOf(period)
			if n == 0 {
				bump = true
				remove(a.limit)
				remove(a.start)
				remove(a.used)
				continue
			}
			u = u.Set(expression.Name(a.limit), expression.Value(n))
		}
	}
	if p.BudgetTimezone != nil {
		zone := *p.BudgetTimezone
		if zone == "" {
			remove(attrBudgetTimezone)
		} else {
			u = u.Set(expression.Name(attrBudgetTimezone), expression.Value(zone))
		}
		if zone != stored {
			bump = true
			for _, period := range token.Periods {
				a := budgetAttrsOf(period)
				remove(a.start)
				remove(a.used)
			}
		}
	}
	if bump {
		u = u.Add(expression.Name(attrBudgetGen), expression.Value(1))
	}
	return u
}
