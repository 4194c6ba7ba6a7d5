package api

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/llmgw/token-service/internal/token"
)

// BudgetZone makes an endpoint that shows tokens compute their
// budget_usage, for tokens without a budget_timezone of their own, in loc:
// the deployment's default zone (template parameter BudgetTimezone, read by
// config). Without it, or with nil, UTC.
func BudgetZone(loc *time.Location) KeyOption {
	return func(o *keyOptions) { o.budgetZone = loc }
}

// parseBudgets reads a request's budgets field: absent or null is nil,
// present false (none on a create, no change on an update); otherwise an
// object whose every value is a JSON integer. Any other value, of the field
// or inside the object (a string, a fraction, 1e3, null, an array), is
// invalid_budgets rather than invalid_json: the contract gives the field
// its own code for every bad value. Which keys are periods, and the range
// of the limits, token.CheckBudgets decides.
func parseBudgets(raw json.RawMessage) (b token.Budgets, present bool, err error) {
	raw = bytes.TrimSpace(raw)
	if isAbsent(raw) {
		return nil, false, nil
	}
	var fields map[string]json.RawMessage
	if raw[0] != '{' || json.Unmarshal(raw, &fields) != nil {
		return nil, false, token.Errorf(token.EInvalidBudgets, "budgets must be an object of periods to integers")
	}
	b = make(token.Budgets, len(fields))
	for k, v := range fields {
		var n int64
		if isAbsent(v) || json.Unmarshal(v, &n) != nil {
			return nil, false, token.Errorf(token.EInvalidBudgets, "%.32q: the limit must be an integer", k)
		}
		b[token.Period(k)] = n
	}
	return b, true, nil
}

// parseBudgetTimezone reads a request's budget_timezone field: absent or
// null is present false; a string is the zone as written ("" is the
// deployment's default); any other JSON value is invalid_budgets, as an
// unknown zone is (token.CheckBudgetTimezone).
func parseBudgetTimezone(raw json.RawMessage) (zone string, present bool, err error) {
	raw = bytes.TrimSpace(raw)
	if isAbsent(raw) {
		return "", false, nil
	}
	if raw[0] != '"' || json.Unmarshal(raw, &zone) != nil {
		return "", false, token.Errorf(token.EInvalidBudgets, "budget_timezone must be a string")
	}
	return zone, true, nil
}

// isAbsent reports whether a raw field was left out or sent as null.
func isAbsent(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || bytes.Equal(raw, []byte("null"))
}

// budgetFields are a token's spend windows as responses show them.
type budgetFields struct {
	// Budgets are the limits by period ({} when none).
	Budgets token.Budgets `json:"budgets"`
	// BudgetTimezone is the zone as the user wrote it ("": the
	// deployment's default).
	BudgetTimezone string `json:"budget_timezone"`
	// BudgetUsage is every window as of the response (token.Usage).
	BudgetUsage map[token.Period]token.BudgetUsage `json:"budget_usage"`
}

// newBudgetFields are t's spend windows at now, computed in t's zone or
// zone (the deployment's default) when t has none.
func newBudgetFields(t token.Token, now time.Time, zone *time.Location) budgetFields {
	b := t.Budgets
	if b == nil {
		b = token.Budgets{}
	}
	return budgetFields{Budgets: b, BudgetTimezone: t.BudgetTimezone, BudgetUsage: t.BudgetUsage(now, zone)}
}

// readBudgetPatch sets on p the budget fields req names.
func readBudgetPatch(p *token.Patch, req UpdateRequest) error {
	b, ok, err := parseBudgets(req.Budgets)
	if err != nil {
		return err
	}
	if ok {
		p.Budgets = &b
	}
	zone, ok, err := parseBudgetTimezone(req.BudgetTimezone)
	if err != nil {
		return err
	}
	if ok {
		p.BudgetTimezone = &zone
	}
	return nil
}
