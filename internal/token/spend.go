package token

import (
	"maps"
	"sync"
	"time"
)

// MaxBudgetTimezoneLength bounds a budget_timezone (IANA names are at most
// about 30 bytes), so that a refused one never reaches the zone loader.
const MaxBudgetTimezoneLength = 64

// CheckBudgets accepts limits of known periods, each 0..MaxQuota (0: no
// window); anything else is EInvalidBudgets.
func CheckBudgets(b Budgets) error {
	for p, n := range b {
		if !ValidPeriod(p) {
			return Errorf(EInvalidBudgets, "unknown period %.32q", string(p))
		}
		if n < 0 || n > MaxQuota {
			return Errorf(EInvalidBudgets, "%s: 0 to %d", p, int64(MaxQuota))
		}
	}
	return nil
}

// CheckBudgetTimezone accepts "" (the deployment's default) or an IANA
// zone name the functions' zone database knows (LoadZone: never "Local");
// else EInvalidBudgets.
func CheckBudgetTimezone(name string) error {
	if name == "" {
		return nil
	}
	if len(name) > MaxBudgetTimezoneLength {
		return Errorf(EInvalidBudgets, "unknown time zone %.64q", name)
	}
	_, err := zone(name)
	return err
}

// zones caches the zones tokens name (LoadZone reads and parses the zone
// database each time); only names that loaded are kept, so it holds at
// most the database's few hundred zones.
var zones sync.Map // name -> *time.Location

// zone is LoadZone(name, "") through the cache.
func zone(name string) (*time.Location, error) {
	if loc, ok := zones.Load(name); ok {
		return loc.(*time.Location), nil
	}
	loc, err := LoadZone(name, "")
	if err != nil {
		return nil, err
	}
	zones.Store(name, loc)
	return loc, nil
}

// Zone is the zone t's windows are computed in: its BudgetTimezone, or
// def (the deployment's default, BudgetTimezone of the template; nil is
// UTC) when that is empty. A stored name the zone database no longer knows
// (validation refuses unknown ones) falls back to def too.
func (t Token) Zone(def *time.Location) *time.Location {
	if def == nil {
		def = time.UTC
	}
	if t.BudgetTimezone == "" {
		return def
	}
	loc, err := zone(t.BudgetTimezone)
	if err != nil {
		return def
	}
	return loc
}

// BudgetUsage is what t's windows read at now (budget_usage), in
// t.Zone(def): one entry per budget, never nil.
func (t Token) BudgetUsage(now time.Time, def *time.Location) map[Period]BudgetUsage {
	out := make(map[Period]BudgetUsage, len(t.Budgets))
	if len(t.Budgets) == 0 {
		return out
	}
	loc := t.Zone(def)
	for p, limit := range t.Budgets {
		if limit > 0 && ValidPeriod(p) {
			out[p] = Usage(limit, t.Windows[p], p, now, loc)
		}
	}
	return out
}

// clone copies b without its zero limits (a period without a window); nil
// when nothing is left, so every read of "no budgets" gives the same value.
func (b Budgets) clone() Budgets {
	var out Budgets
	for p, n := range b {
		if n != 0 {
			if out == nil {
				out = make(Budgets, len(b))
			}
			out[p] = n
		}
	}
	return out
}

// applyBudgets sets the budget fields p sets on t: the periods named
// (0 removes a window with what it counted; a new limit keeps what the
// window counted), then the zone, whose change starts every window afresh.
// Either bumps WindowGen, as the store's update does.
func (p Patch) applyBudgets(t Token) Token {
	bump := false
	if p.Budgets != nil {
		b, w := maps.Clone(t.Budgets), maps.Clone(t.Windows)
		if b == nil {
			b = Budgets{}
		}
		for period, n := range *p.Budgets {
			if n == 0 {
				bump = true
				delete(b, period)
				delete(w, period)
				continue
			}
			b[period] = n
		}
		t.Budgets = b.clone()
		if len(w) == 0 {
			w = nil
		}
		t.Windows = w
	}
	if p.BudgetTimezone != nil && *p.BudgetTimezone != t.BudgetTimezone {
		t.BudgetTimezone = *p.BudgetTimezone
		t.Windows = nil
		bump = true
	}
	if bump {
		t.WindowGen++
	}
	return t
}
