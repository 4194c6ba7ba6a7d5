package token

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := LoadZone(name, "UTC")
	if err != nil {
		t.Fatalf("LoadZone(%q): %v", name, err)
	}
	return loc
}

// at is the instant of a local wall time in loc; for an ambiguous wall
// time, the first reading.
func at(t *testing.T, loc *time.Location, s string) time.Time {
	t.Helper()
	v, err := time.ParseInLocation("2006-01-02 15:04:05", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestWindowAt(t *testing.T) {
	shanghai := mustZone(t, "Asia/Shanghai")
	ny := mustZone(t, "America/New_York")
	utc := time.UTC
	u := func(s string) int64 { return at(t, utc, s).Unix() }
	tests := []struct {
		name       string
		period     Period
		loc        *time.Location
		now        time.Time
		start, end int64
	}{
		// Asia/Shanghai is UTC+8 all year: the day turns at 16:00 UTC.
		{"shanghai day", PeriodDay, shanghai, at(t, shanghai, "2026-11-28 09:30:00"), u("2026-11-27 16:00:00"), u("2026-11-28 16:00:00")},
		{"shanghai day at its first instant", PeriodDay, shanghai, at(t, shanghai, "2026-11-29 00:00:00"), u("2026-11-28 16:00:00"), u("2026-11-29 16:00:00")},
		{"shanghai day at its last second", PeriodDay, shanghai, at(t, shanghai, "2026-11-28 23:59:59"), u("2026-11-27 16:00:00"), u("2026-11-28 16:00:00")},
		// Weeks turn over on Monday 00:00 in the zone: 2026-11-30 is a Monday.
		{"week on Sunday", PeriodWeek, shanghai, at(t, shanghai, "2026-11-29 23:59:59"), u("2026-11-22 16:00:00"), u("2026-11-29 16:00:00")},
		{"week on Monday 00:00", PeriodWeek, shanghai, at(t, shanghai, "2026-11-30 00:00:00"), u("2026-11-29 16:00:00"), u("2026-12-06 16:00:00")},
		{"week across a year", PeriodWeek, utc, at(t, utc, "2027-01-01 12:00:00"), u("2026-12-28 00:00:00"), u("2027-01-04 00:00:00")},
		// Months: Jan 31 -> Feb 1, Feb 28/29 -> Mar 1.
		{"month on Jan 31", PeriodMonth, utc, at(t, utc, "2027-01-31 23:59:59"), u("2027-01-01 00:00:00"), u("2027-02-01 00:00:00")},
		{"month on Feb 1", PeriodMonth, utc, at(t, utc, "2027-02-01 00:00:00"), u("2027-02-01 00:00:00"), u("2027-03-01 00:00:00")},
		{"month on Feb 28 of a common year", PeriodMonth, utc, at(t, utc, "2027-02-28 23:00:00"), u("2027-02-01 00:00:00"), u("2027-03-01 00:00:00")},
		{"month on Feb 29 of a leap year", PeriodMonth, utc, at(t, utc, "2028-02-29 23:59:59"), u("2028-02-01 00:00:00"), u("2028-03-01 00:00:00")},
		{"month on Mar 1 of a leap year", PeriodMonth, utc, at(t, utc, "2028-03-01 00:00:00"), u("2028-03-01 00:00:00"), u("2028-04-01 00:00:00")},
		{"month in New York", PeriodMonth, ny, at(t, ny, "2027-03-31 23:00:00"), u("2027-03-01 05:00:00"), u("2027-04-01 04:00:00")},
		// America/New_York: 2027-03-14 02:00 EST jumps to 03:00 EDT (a
		// 23-hour day); 2027-11-07 02:00 EDT falls back to 01:00 EST (25 hours).
		{"new york spring day", PeriodDay, ny, at(t, ny, "2027-03-14 12:00:00"), u("2027-03-14 05:00:00"), u("2027-03-15 04:00:00")},
		{"new york autumn day", PeriodDay, ny, at(t, ny, "2027-11-07 12:00:00"), u("2027-11-07 04:00:00"), u("2027-11-08 05:00:00")},
		// Hours: the skipped hour does not exist; the repeated one is two windows.
		{"hour before the spring jump", PeriodHour, ny, time.Unix(u("2027-03-14 06:59:59"), 0), u("2027-03-14 06:00:00"), u("2027-03-14 07:00:00")},
		{"hour after the spring jump", PeriodHour, ny, time.Unix(u("2027-03-14 07:00:00"), 0), u("2027-03-14 07:00:00"), u("2027-03-14 08:00:00")},
		{"first 01:00 hour in autumn", PeriodHour, ny, time.Unix(u("2027-11-07 05:30:00"), 0), u("2027-11-07 05:00:00"), u("2027-11-07 06:00:00")},
		{"second 01:00 hour in autumn", PeriodHour, ny, time.Unix(u("2027-11-07 06:30:00"), 0), u("2027-11-07 06:00:00"), u("2027-11-07 07:00:00")},
		{"minute", PeriodMinute, shanghai, time.Unix(u("2026-11-28 12:00:59"), 0), u("2026-11-28 12:00:00"), u("2026-11-28 12:01:00")},
		{"minute at its start", PeriodMinute, ny, time.Unix(u("2026-11-28 12:01:00"), 0), u("2026-11-28 12:01:00"), u("2026-11-28 12:02:00")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := WindowAt(tt.period, tt.now, tt.loc)
			if got.Start != tt.start || got.End != tt.end {
				t.Errorf("WindowAt(%s, %s) = [%s, %s), want [%s, %s)", tt.period, tt.now.In(tt.loc),
					time.Unix(got.Start, 0).In(tt.loc), time.Unix(got.End, 0).In(tt.loc),
					time.Unix(tt.start, 0).In(tt.loc), time.Unix(tt.end, 0).In(tt.loc))
			}
		})
	}
}

// TestDayLengthsAcrossDST: New York's days are 23 and 25 hours long on the
// days its clock changes, 24 otherwise.
func TestDayLengthsAcrossDST(t *testing.T) {
	ny := mustZone(t, "America/New_York")
	tests := []struct {
		day   string
		hours int64
	}{
		{"2027-03-13", 24}, {"2027-03-14", 23}, {"2027-03-15", 24},
		{"2027-11-06", 24}, {"2027-11-07", 25}, {"2027-11-08", 24},
	}
	for _, tt := range tests {
		w := WindowAt(PeriodDay, at(t, ny, tt.day+" 12:00:00"), ny)
		if got := (w.End - w.Start) / 3600; got != tt.hours || (w.End-w.Start)%3600 != 0 {
			t.Errorf("day %s lasts %d s, want %d hours", tt.day, w.End-w.Start, tt.hours)
		}
	}
}

// TestSkippedMidnight: where a daylight-saving change skips midnight (the
// clock jumps from 23:59:59 to 01:00:00), the day starts at the first
// instant after the jump.
func TestSkippedMidnight(t *testing.T) {
	// America/Santiago moved its clock from 2022-09-11 00:00 to 01:00.
	loc := mustZone(t, "America/Santiago")
	jump := time.Date(2022, 9, 11, 4, 0, 0, 0, time.UTC) // 00:00 at UTC-4 is the jump
	if got := jump.In(loc).Format("15:04"); got != "01:00" {
		t.Fatalf("the zone database disagrees with this test: the jump reads %s", got)
	}
	w := WindowAt(PeriodDay, jump.Add(3*time.Hour), loc)
	if w.Start != jump.Unix() {
		t.Errorf("day start = %s, want the jump %s", time.Unix(w.Start, 0).In(loc), jump.In(loc))
	}
	prev := WindowAt(PeriodDay, jump.Add(-time.Second), loc)
	if prev.End != jump.Unix() {
		t.Errorf("previous day ends %s, want the jump", time.Unix(prev.End, 0).In(loc))
	}
}

// TestWindowsTile: over a year in several zones, each window ends where
// the next begins, holds the instant it was asked for, and the windows'
// boundaries read 00:00 (or the first instant after a skipped midnight).
func TestWindowsTile(t *testing.T) {
	for _, name := range []string{"UTC", "Asia/Shanghai", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu", "America/Santiago"} {
		loc := mustZone(t, name)
		for _, p := range Periods {
			step := map[Period]time.Duration{PeriodMinute: 7 * time.Minute, PeriodHour: 37 * time.Minute}[p]
			if step == 0 {
				step = 5 * time.Hour
			}
			t0 := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
			for now := t0; now.Before(t0.AddDate(1, 0, 0)); now = now.Add(step) {
				w := WindowAt(p, now, loc)
				if now.Unix() < w.Start || now.Unix() >= w.End {
					t.Fatalf("%s %s: %s outside its window [%d, %d)", name, p, now, w.Start, w.End)
				}
				if next := WindowAt(p, time.Unix(w.End, 0), loc); next.Start != w.End {
					t.Fatalf("%s %s: window after %s starts %d, want %d", name, p, now, next.Start, w.End)
				}
			}
		}
	}
}

func TestLoadZone(t *testing.T) {
	tests := []struct {
		name, def string
		want      string
		wantErr   bool
	}{
		{"Asia/Shanghai", "UTC", "Asia/Shanghai", false},
		{"", "America/New_York", "America/New_York", false},
		{"", "", "UTC", false},
		{"Mars/Olympus", "UTC", "", true},
		{"Local", "UTC", "", true},
		{"../../etc/passwd", "UTC", "", true},
		{"/usr/share/zoneinfo/UTC", "UTC", "", true},
	}
	for _, tt := range tests {
		loc, err := LoadZone(tt.name, tt.def)
		if tt.wantErr {
			if err == nil || ErrorCode(err) != EInvalidBudgets {
				t.Errorf("LoadZone(%q) = %v, %v; want invalid_budgets", tt.name, loc, err)
			}
			continue
		}
		if err != nil || loc.String() != tt.want {
			t.Errorf("LoadZone(%q, %q) = %v, %v; want %s", tt.name, tt.def, loc, err, tt.want)
		}
	}
}

func TestUsage(t *testing.T) {
	loc := mustZone(t, "Asia/Shanghai")
	now := at(t, loc, "2026-11-28 12:00:00")
	day := WindowAt(PeriodDay, now, loc)
	tests := []struct {
		name   string
		stored BudgetWindow
		want   BudgetUsage
	}{
		{"current window", BudgetWindow{Start: day.Start, Used: 300}, BudgetUsage{Limit: 1000, Used: 300, ResetsAt: day.End}},
		{"ended window reads 0", BudgetWindow{Start: day.Start - 86400, Used: 900}, BudgetUsage{Limit: 1000, Used: 0, ResetsAt: day.End}},
		{"never charged", BudgetWindow{}, BudgetUsage{Limit: 1000, Used: 0, ResetsAt: day.End}},
		{"opened by a clock ahead", BudgetWindow{Start: day.End, Used: 5}, BudgetUsage{Limit: 1000, Used: 5, ResetsAt: day.End + 86400}},
	}
	for _, tt := range tests {
		if got := Usage(1000, tt.stored, PeriodDay, now, loc); got != tt.want {
			t.Errorf("%s: Usage = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

// TestWindowsWithoutZoneDatabase runs the zone-dependent tests again in a
// process that cannot see the machine's zone database (nor Go's own
// zoneinfo.zip), as on Lambda's runtime: the windows must come out the
// same from the time/tzdata copy linked into the binary. It needs a mount
// namespace (unshare, as root or with user namespaces).
func TestWindowsWithoutZoneDatabase(t *testing.T) {
	if os.Getenv("TOKEN_TEST_NO_ZONEINFO") == "1" {
		for _, dir := range []string{"/usr/share/zoneinfo", "/usr/share/lib/zoneinfo", "/etc/zoneinfo"} {
			if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
				t.Fatalf("%s is visible: the test did not hide the zone database", dir)
			}
		}
		return // the parent asserts the other tests passed in this process
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare is not installed: cannot hide the zone database")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	var mounts []string
	for _, dir := range []string{"/usr/share/zoneinfo", "/usr/share/lib/zoneinfo", "/etc/zoneinfo"} {
		if _, err := os.Stat(dir); err == nil {
			mounts = append(mounts, "mount --bind "+empty+" "+dir)
		}
	}
	script := strings.Join(append(mounts, "exec \"$0\" -test.run '^(TestWindowAt|TestDayLengthsAcrossDST|TestSkippedMidnight|TestLoadZone|TestWindowsWithoutZoneDatabase)$' -test.v"), " && ")
	cmd := exec.Command(unshare, "--mount", "--map-root-user", "sh", "-c", script, exe)
	if os.Geteuid() == 0 {
		cmd = exec.Command(unshare, "--mount", "sh", "-c", script, exe)
	}
	// No GOROOT zoneinfo.zip and no ZONEINFO either.
	cmd.Env = append(os.Environ(), "TOKEN_TEST_NO_ZONEINFO=1", "ZONEINFO=", "GOROOT="+filepath.Join(empty, "goroot"))
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), "Operation not permitted") || strings.Contains(string(out), "unshare failed") {
		t.Skipf("no mount namespace here: %s", strings.TrimSpace(string(out)))
	}
	if err != nil || !strings.Contains(string(out), "--- PASS: TestSkippedMidnight") || !strings.Contains(string(out), "--- PASS: TestWindowAt") {
		t.Fatalf("windows without a zone database: %v\n%s", err, out)
	}
}
