package token

import (
	"fmt"
	"strings"
	"time"

	// The Lambda runtime carries no zone database; budgets compute their
	// windows in the user's zone, so every binary that links the domain
	// carries Go's own copy (about 450 KB).
	_ "time/tzdata"
)

// Period is the length of a spend window.
type Period string

// The periods of spend windows (README "Spend windows"), shortest first.
const (
	PeriodMinute Period = "minute"
	PeriodHour   Period = "hour"
	PeriodDay    Period = "day"
	PeriodWeek   Period = "week"
	PeriodMonth  Period = "month"
)

// Periods lists every period, shortest first.
var Periods = []Period{PeriodMinute, PeriodHour, PeriodDay, PeriodWeek, PeriodMonth}

// ValidPeriod reports whether p names a period.
func ValidPeriod(p Period) bool {
	for _, q := range Periods {
		if p == q {
			return true
		}
	}
	return false
}

// Budgets are a token's spend windows: a limit (quota units, > 0) per
// period; a period absent has no window.
type Budgets map[Period]int64

// LoadZone returns the zone a token's windows are computed in: name (an
// IANA zone such as Asia/Shanghai), or def when name is empty. An unknown
// zone is EInvalidBudgets.
func LoadZone(name, def string) (*time.Location, error) {
	if name == "" {
		name = def
	}
	if name == "" {
		return time.UTC, nil
	}
	// time.LoadLocation accepts "Local", which means the machine's zone:
	// never a user's choice.
	if name == "Local" || strings.HasPrefix(name, "/") || strings.Contains(name, "..") {
		return nil, Errorf(EInvalidBudgets, "unknown time zone %q", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, Errorf(EInvalidBudgets, "unknown time zone %q", name)
	}
	return loc, nil
}

// Window is one spend window as of an instant: it runs from Start
// (inclusive) to End (exclusive, the next window's start), Unix seconds.
type Window struct {
	Start, End int64
}

// WindowAt returns the window of period p that holds t in loc. The
// boundaries (README "Spend windows: budgets that reset"):
//
//   - a day starts at the first instant at or after local 00:00 (a day whose
//     midnight a daylight-saving change skips starts at the first instant
//     after it; days are 23 or 25 hours across the changes);
//   - a week at Monday's day start, a month at the 1st's day start;
//   - an hour at the last instant the local clock read HH:00:00, a minute at
//     the last instant it read HH:MM:00 (a repeated autumn hour is two
//     hour windows).
func WindowAt(p Period, t time.Time, loc *time.Location) Window {
	switch p {
	case PeriodMinute:
		return clockWindow(t, loc, 60)
	case PeriodHour:
		return clockWindow(t, loc, 3600)
	}
	y, m, d := currentDate(t, loc)
	switch p {
	case PeriodWeek:
		wd := time.Date(y, m, d, 12, 0, 0, 0, time.UTC).Weekday()
		back := (int(wd) + 6) % 7 // days since Monday
		y, m, d = civil(y, m, d-back)
		ny, nm, nd := civil(y, m, d+7)
		return Window{dayStart(y, m, d, loc), dayStart(ny, nm, nd, loc)}
	case PeriodMonth:
		ny, nm, nd := civil(y, m+1, 1)
		return Window{dayStart(y, m, 1, loc), dayStart(ny, nm, nd, loc)}
	default: // PeriodDay
		ny, nm, nd := civil(y, m, d+1)
		return Window{dayStart(y, m, d, loc), dayStart(ny, nm, nd, loc)}
	}
}

// civil normalises a date (d and m may overflow) to year, month, day.
func civil(y int, m time.Month, d int) (int, time.Month, int) {
	return time.Date(y, m, d, 12, 0, 0, 0, time.UTC).Date()
}

// midnight is the wall-clock seconds of y-m-d 00:00:00.
func midnight(y int, m time.Month, d int) int64 {
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix()
}

// zoneAt is the offset (seconds east of UTC) in effect at Unix second s and
// the bounds of the zone period holding it ([start, end), Unix seconds;
// sentinels far in the past and future when the zone never changes).
func zoneAt(s int64, loc *time.Location) (off, start, end int64) {
	lt := time.Unix(s, 0).In(loc)
	_, o := lt.Zone()
	zs, ze := lt.ZoneBounds()
	start, end = minSentinel, maxSentinel
	if !zs.IsZero() {
		start = zs.Unix()
	}
	if !ze.IsZero() {
		end = ze.Unix()
	}
	return int64(o), start, end
}

// Sentinels for a zone period without bounds.
const (
	minSentinel = -1 << 62
	maxSentinel = 1 << 62
)

// currentDate is the date of the day window holding t: t's local date,
// or the next one when the clock was set back across midnight and t reads
// the previous date again although the next day has begun.
func currentDate(t time.Time, loc *time.Location) (int, time.Month, int) {
	y, m, d := t.In(loc).Date()
	ny, nm, nd := civil(y, m, d+1)
	if dayStart(ny, nm, nd, loc) <= t.Unix() {
		return ny, nm, nd
	}
	return y, m, d
}

// dayStart is the first instant (Unix seconds) at which the local clock
// reads y-m-d 00:00:00 or later: the midnight itself, or, when a
// daylight-saving change skips it, the first instant after the jump. It
// walks the zone's periods forward from a point surely before it (no
// offset passes 16 hours).
func dayStart(y int, m time.Month, d int, loc *time.Location) int64 {
	w := midnight(y, m, d)
	cur := w - 16*3600
	for {
		off, _, end := zoneAt(cur, loc)
		if cand := max(w-off, cur); cand < end {
			return cand
		}
		cur = end
	}
}

// clockWindow is the window of a clock unit (60: minute, 3600: hour)
// holding t: from the last instant at or before t whose wall clock was a
// whole unit, to the first instant after t whose wall clock is one.
func clockWindow(t time.Time, loc *time.Location, unit int64) Window {
	return Window{lastWhole(t.Unix(), loc, unit), nextWhole(t.Unix(), loc, unit)}
}

// lastWhole is the last Unix second at or before s at which the wall clock
// read a whole unit (HH:MM:00 or HH:00:00), walking the zone's periods
// back.
func lastWhole(s int64, loc *time.Location, unit int64) int64 {
	for {
		off, start, _ := zoneAt(s, loc)
		if cand := floorDiv(s+off, unit)*unit - off; cand >= start {
			return cand
		}
		s = start - 1
	}
}

// nextWhole is the first Unix second after s at which the wall clock reads
// a whole unit, walking the zone's periods forward.
func nextWhole(s int64, loc *time.Location, unit int64) int64 {
	cur := s + 1
	for {
		off, _, end := zoneAt(cur, loc)
		if cand := max(ceilDiv(cur+off, unit)*unit-off, cur); cand < end {
			return cand
		}
		cur = end
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func ceilDiv(a, b int64) int64 { return -floorDiv(-a, b) }

// BudgetWindow is the stored state of one spend window: the start of the
// window it counts (Unix seconds, as WindowAt gives it) and what was
// charged in it.
type BudgetWindow struct {
	Start int64
	Used  int64
}

// BudgetUsage is one window as a read reports it (budget_usage).
type BudgetUsage struct {
	Limit    int64 `json:"limit"`
	Used     int64 `json:"used"`
	ResetsAt int64 `json:"resets_at"`
}

// Usage is what window p of limit shows at now: the stored state counts
// while its window is current (or later: another container's clock ran
// ahead and opened it); a window that has ended reads used 0 with its
// next reset.
func Usage(limit int64, stored BudgetWindow, p Period, now time.Time, loc *time.Location) BudgetUsage {
	w := WindowAt(p, now, loc)
	u := BudgetUsage{Limit: limit, ResetsAt: w.End}
	if stored.Start >= w.Start {
		u.Used = stored.Used
		if stored.Start > w.Start {
			u.ResetsAt = WindowAt(p, time.Unix(stored.Start, 0), loc).End
		}
	}
	return u
}

// String formats b for logs and errors: "day=1000,minute=50".
func (b Budgets) String() string {
	var parts []string
	for _, p := range Periods {
		if n, ok := b[p]; ok {
			parts = append(parts, fmt.Sprintf("%s=%d", p, n))
		}
	}
	return strings.Join(parts, ",")
}
