package main

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSmoke runs the whole bench with tiny counts (one function for sizes
// and init durations) into a temporary folder and checks both outputs:
// every section of RESULTS.md, every kind of figure in results.json.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs DynamoDB Local, RIE and go build")
	}
	out := t.TempDir()
	args := []string{
		"-root", filepath.Join("..", "..", ".."), "-out", out,
		"-tokens", "3", "-calls", "2", "-warmup", "1",
		"-http-requests", "4", "-concurrency", "2", "-cold-runs", "1", "-functions", "GetTokenFunction",
	}
	var stdout strings.Builder
	if err := run(context.Background(), args, &stdout, io.Discard); err != nil {
		t.Fatalf("run: %v", err)
	}
	if !strings.Contains(stdout.String(), "targets:") {
		t.Errorf("summary has no targets line:\n%s", stdout.String())
	}
	md, err := os.ReadFile(filepath.Join(out, "RESULTS.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range Sections {
		if !strings.Contains(string(md), "\n"+s+"\n") {
			t.Errorf("RESULTS.md has no section %q", s)
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res Results
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	endpoints := map[string]bool{}
	for _, r := range res.Endpoints {
		endpoints[r.Name] = true
		if r.Calls != 2 || r.P50Micros <= 0 {
			t.Errorf("%s: %d calls, p50 %v us; want 2 calls and a latency", r.Name, r.Calls, r.P50Micros)
		}
	}
	for _, name := range []string{"list page 1", "list page 10", "search by keyword", "search by exact key", "get", "create", "update", "status-only update", "delete", "batch delete of 100", "usage by key", "reveal", "rotate"} {
		if !endpoints[name] {
			t.Errorf("results.json has no endpoint %q", name)
		}
	}
	tests := []struct {
		name     string
		got, min int
	}{
		{"verify rows", len(res.Verify), 10},
		{"http rows", len(res.HTTP), 2},
		{"function rows", len(res.Functions), 1},
		{"cost rows", len(res.Costs), len(res.Endpoints) + len(res.Verify)},
		{"targets", len(res.Targets), 1},
	}
	for _, tt := range tests {
		if tt.got < tt.min {
			t.Errorf("%s = %d, want at least %d", tt.name, tt.got, tt.min)
		}
	}
	// The figures come from the middleware, not from a guess.
	for _, r := range res.Endpoints {
		if r.Name == "get" && (r.Ops["GetItem"] != 1 || r.RRU <= 0) {
			t.Errorf("get: ops %v, RRU %v; want 1 GetItem and its consumed capacity", r.Ops, r.RRU)
		}
		if r.Name == "create" && (r.TxLocalUnits <= 0 || r.TxAWSUnits != 6) {
			t.Errorf("create: tx local %v, tx AWS %v; want Local's figure and 6 WRU (3 items x 2)", r.TxLocalUnits, r.TxAWSUnits)
		}
	}
	// A request id's hold, settle and refund are 1 read and 1 transaction
	// of 2 items; its duplicate the read alone.
	for _, r := range res.Verify {
		want := map[string]map[string]float64{
			"hold (request id)":           {"BatchGetItem": 1, "TransactWriteItems": 1},
			"settle (request id)":         {"BatchGetItem": 1, "TransactWriteItems": 1},
			"refund (request id)":         {"BatchGetItem": 1, "TransactWriteItems": 1},
			"duplicate hold (request id)": {"BatchGetItem": 1},
		}[r.Name]
		if want != nil && (!maps.Equal(r.Ops, want) || (want["TransactWriteItems"] == 1 && r.TxAWSUnits != 4)) {
			t.Errorf("%s: ops %v, tx AWS WRU %v; want %v and 4 WRU (2 items x 2)", r.Name, r.Ops, r.TxAWSUnits, want)
		}
	}
	if f := res.Functions[0]; f.BinaryBytes <= 0 || f.InitMedianMs <= 0 {
		t.Errorf("function row %+v: want a size and an init duration", f)
	}
}
