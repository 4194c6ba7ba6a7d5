package token

import (
	"maps"
	"time"
)

// The spend windows at verify (README "Spend windows: budgets that reset"):
// a charge counts in every window of the token, in the same conditional
// write that checks it, and a give-back through a request id returns only
// to the windows that counted that request's charge and are still current.
// The first charge after a reset opens the new window in that write: no
// job ever resets a window.

// WindowPart is what one Write does to one spend window of the token, on
// its own condition re-checked on the stored item:
//
//   - a charge (Add > 0) on a window whose stored start is Start (Open
//     false): adds Add to used, on the condition that the stored start is
//     still Start and, when Checked, that used + Add <= Limit;
//   - a charge that opens the window Start (Open: the stored window is
//     older, or there is none): sets start to Start and used to Add, on the
//     condition that the stored start is still older or absent (another
//     container may have opened it meanwhile);
//   - a give-back (Add < 0, never Open): subtracts from used, on the
//     condition that the stored start is still Start and used holds it.
//
// Every charge also conditions on the limit read (Limit), so that a
// concurrent change of the budgets makes the caller decide again, and the
// write conditions on the zone read, in which Start was computed.
type WindowPart struct {
	Period  Period
	Start   int64 // Unix seconds, as WindowAt gives it
	Open    bool
	Add     int64
	Limit   int64
	Checked bool // a consume or hold: it must fit; a settle's charge need not
}

// windowOf is the window of period p a charge at now counts in, given the
// stored state: now's window, or the stored one when it is later (another
// container's clock ran ahead and opened it: a window never moves back).
// open reports that the stored window is older than now's (or absent).
func windowOf(stored BudgetWindow, p Period, now time.Time, loc *time.Location) (start int64, open bool) {
	cur := WindowAt(p, now, loc).Start
	if stored.Start >= cur {
		return stored.Start, false
	}
	return cur, true
}

// BudgetRefusal returns the spend window of t that refuses a checked
// charge of consume at now (in t.Zone(def)): used + consume > limit, or,
// for a verify without consume (consume 0), a window already full (used >=
// limit). Several refusing, the longest period is named. retryAfter is the
// whole seconds until that window resets (at least 1), or 0 when consume
// is above its limit and can never fit.
func BudgetRefusal(t Token, consume int64, now time.Time, def *time.Location) (p Period, retryAfter int64, refused bool) {
	if len(t.Budgets) == 0 {
		return "", 0, false
	}
	loc := t.Zone(def)
	for i := len(Periods) - 1; i >= 0; i-- {
		p := Periods[i]
		limit := t.Budgets[p]
		if limit <= 0 {
			continue
		}
		u := Usage(limit, t.Windows[p], p, now, loc)
		switch {
		case consume > limit:
			return p, 0, true
		case consume > 0 && u.Used > limit-consume, consume == 0 && u.Used >= limit:
			return p, max(u.ResetsAt-now.Unix(), 1), true
		}
	}
	return "", 0, false
}

// ChargeWindows are the parts of a charge of amount (> 0) at now that
// counts it in every spend window of t (in t.Zone(def)); checked for a
// consume or a hold, which BudgetRefusal has let through, not for a
// settle's charge, which may take used past the limit.
func ChargeWindows(t Token, amount int64, checked bool, now time.Time, def *time.Location) []WindowPart {
	if amount <= 0 || len(t.Budgets) == 0 {
		return nil
	}
	loc := t.Zone(def)
	var parts []WindowPart
	for _, p := range Periods {
		limit := t.Budgets[p]
		if limit <= 0 {
			continue
		}
		start, open := windowOf(t.Windows[p], p, now, loc)
		parts = append(parts, WindowPart{Period: p, Start: start, Open: open, Add: amount, Limit: limit, Checked: checked})
	}
	return parts
}

// GiveBackWindows are the parts of a give-back of amount (> 0) through a
// request whose record counted its charge in counted: each window of t
// that counted some of it and is still current (its stored start is the
// one counted, and not older than now's window) gets back what it counted
// of the request, at most amount and never more than its used. Windows
// that have ended, or were started afresh since (another start, or the
// same start in another generation: WindowGen), get nothing.
func GiveBackWindows(t Token, counted RequestWindows, amount int64, now time.Time, def *time.Location) []WindowPart {
	if amount <= 0 || len(t.Budgets) == 0 {
		return nil
	}
	loc := t.Zone(def)
	var parts []WindowPart
	for i, p := range Periods {
		c, stored := counted[i], t.Windows[p]
		if t.Budgets[p] <= 0 || c.Used <= 0 || c.Start != stored.Start || c.Gen != t.WindowGen || stored.Start < WindowAt(p, now, loc).Start {
			continue
		}
		if back := min(amount, c.Used, stored.Used); back > 0 {
			parts = append(parts, WindowPart{Period: p, Start: stored.Start, Add: -back, Limit: t.Budgets[p]})
		}
	}
	return parts
}

// RequestWindows is, for each period (in the order of Periods), the window
// in which a request's charge was counted and how much of the charge it
// still counts; zero when none. An array, not a map, so that a Request
// stays comparable.
type RequestWindows [5]CountedWindow

// CountedWindow is one entry of RequestWindows: the window's start, what
// it counts of the request, and the token's WindowGen when it counted it.
type CountedWindow struct {
	Start int64
	Used  int64
	Gen   int64
}

// Of returns the entry of period p (zero for an unknown period).
func (c RequestWindows) Of(p Period) CountedWindow {
	if i := periodIndex(p); i >= 0 {
		return c[i]
	}
	return CountedWindow{}
}

// Set sets the entry of period p (an unknown period is ignored).
func (c *RequestWindows) Set(p Period, w CountedWindow) {
	if i := periodIndex(p); i >= 0 {
		c[i] = w
	}
}

// After is c once a write made parts at now on t: a charge counted in a
// window adds to the entry of that window (replacing an entry of an older
// one, or of another generation), a give-back subtracts. Entries that can
// never be given back to again are dropped, so the record stays small:
// nothing left, a window that has ended at now or is of another
// generation, a period t has no budget for. t is the token the write
// conditioned on, so its WindowGen is the one the charge counted in.
func (c RequestWindows) After(parts []WindowPart, t Token, now time.Time, def *time.Location) RequestWindows {
	for _, part := range parts {
		i := periodIndex(part.Period)
		if i < 0 {
			continue
		}
		if part.Add > 0 && (c[i].Start != part.Start || c[i].Gen != t.WindowGen) {
			c[i] = CountedWindow{Start: part.Start, Gen: t.WindowGen}
		}
		c[i].Used += part.Add
	}
	var loc *time.Location
	for i, p := range Periods {
		if c[i] == (CountedWindow{}) {
			continue
		}
		if loc == nil {
			loc = t.Zone(def)
		}
		if c[i].Used <= 0 || t.Budgets[p] <= 0 || c[i].Gen != t.WindowGen || c[i].Start < WindowAt(p, now, loc).Start {
			c[i] = CountedWindow{}
		}
	}
	return c
}

// periodIndex is p's index in Periods, -1 when p is not a period.
func periodIndex(p Period) int {
	for i, q := range Periods {
		if p == q {
			return i
		}
	}
	return -1
}

// applyWindows is stored (not changed) once parts are made on it.
func applyWindows(stored map[Period]BudgetWindow, parts []WindowPart) map[Period]BudgetWindow {
	out := maps.Clone(stored)
	if out == nil {
		out = make(map[Period]BudgetWindow, len(parts))
	}
	for _, part := range parts {
		if part.Open {
			out[part.Period] = BudgetWindow{Start: part.Start, Used: part.Add}
			continue
		}
		w := out[part.Period]
		w.Used += part.Add
		out[part.Period] = w
	}
	return out
}
