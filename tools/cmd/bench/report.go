package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// Prices are the AWS list prices the cost table uses.
type Prices struct {
	Region            string  `json:"region"`
	LambdaGBSecond    float64 `json:"lambda_arm64_per_gb_second"`
	LambdaPerMillion  float64 `json:"lambda_per_million_requests"`
	HTTPAPIPerMillion float64 `json:"http_api_per_million_requests"`
	RRUPerMillion     float64 `json:"dynamodb_on_demand_per_million_rru"`
	WRUPerMillion     float64 `json:"dynamodb_on_demand_per_million_wru"`
	Source            string  `json:"source"`
}

var currentPrices = Prices{
	Region: "us-east-1", LambdaGBSecond: 0.0000133334, LambdaPerMillion: 0.20, HTTPAPIPerMillion: 1.00,
	RRUPerMillion: 0.125, WRUPerMillion: 0.625,
	Source: "AWS list prices, us-east-1, as of 2025: Lambda arm64 $0.0000133334/GB-s and $0.20/1M requests (aws.amazon.com/lambda/pricing); " +
		"HTTP API $1.00/1M requests, first 300M/month (aws.amazon.com/api-gateway/pricing); DynamoDB on-demand $0.125/1M RRU and $0.625/1M WRU " +
		"since the 50% on-demand cut effective 2024-11-01 (AWS News Blog post on DynamoDB on-demand, updated 2025-01-31; also airbyte.com DynamoDB pricing, 2025-07-21). Free tiers ignored.",
}

// Results is everything the bench writes.
type Results struct {
	Started          string        `json:"started"`
	Elapsed          string        `json:"elapsed"`
	Machine          Machine       `json:"machine"`
	Prices           Prices        `json:"prices"`
	Endpoints        []Row         `json:"endpoints"`
	Authorizer       Row           `json:"authorizer"`
	Verify           []Row         `json:"verify"`
	LargestItemBytes int           `json:"largest_item_bytes"`
	HTTP             []HTTPRow     `json:"http"`
	Functions        []FunctionRow `json:"functions"`
	Costs            []Cost        `json:"costs"`
	Targets          []Target      `json:"targets"`
	Skipped          []string      `json:"skipped,omitempty"`
}

// Cost is the AWS cost of a million calls of one endpoint.
type Cost struct {
	Name       string  `json:"name"`
	Tokens     int     `json:"tokens,omitempty"`
	BilledMs   float64 `json:"billed_ms"`
	Lambda     float64 `json:"lambda_usd"`
	Authorizer float64 `json:"authorizer_usd"`
	HTTPAPI    float64 `json:"http_api_usd"`
	DynamoDB   float64 `json:"dynamodb_usd"`
	Total      float64 `json:"total_usd"`
}

// Target is one stated goal and whether the run met it.
type Target struct {
	Goal string `json:"goal"`
	Got  string `json:"got"`
	Met  bool   `json:"met"`
	Why  string `json:"why_missed,omitempty"`
}

func lambdaCost(p Prices, memMB int, ms float64) (billed, usd float64) {
	billed = math.Max(1, math.Ceil(ms))
	return billed, p.LambdaPerMillion + float64(memMB)/1024*billed/1000*1e6*p.LambdaGBSecond
}

func costs(res *Results, memMB map[string]int) []Cost {
	p := res.Prices
	_, authLambda := lambdaCost(p, memMB["AuthorizerFunction"], res.Authorizer.P50Micros/1000)
	auth := authLambda + res.Authorizer.RRU*p.RRUPerMillion + res.Authorizer.WRU*p.WRUPerMillion
	var out []Cost
	add := func(r Row, http bool) {
		billed, l := lambdaCost(p, memMB[r.Function], r.P50Micros/1000)
		c := Cost{Name: r.Name, Tokens: r.Tokens, BilledMs: billed, Lambda: l, DynamoDB: r.RRU*p.RRUPerMillion + r.WRU*p.WRUPerMillion}
		if http {
			c.Authorizer, c.HTTPAPI = auth, p.HTTPAPIPerMillion
		}
		c.Total = c.Lambda + c.Authorizer + c.HTTPAPI + c.DynamoDB
		out = append(out, c)
	}
	for _, r := range res.Endpoints {
		add(r, true)
	}
	for _, r := range res.Verify {
		add(r, false)
	}
	return out
}

// evaluate checks the stated targets against the results.
func evaluate(res *Results) {
	var ts []Target
	check := func(goal, got string, met bool, why string) {
		t := Target{Goal: goal, Got: got, Met: met}
		if !met {
			t.Why = why
		}
		ts = append(ts, t)
	}
	for _, r := range res.Endpoints {
		ops := opsString(r.Ops)
		switch r.Name {
		case "get":
			check(fmt.Sprintf("get = 1 read (%d tokens)", r.Tokens), ops, r.Ops["GetItem"] == 1 && r.RequestsMax == 1,
				"get reads more than its item: see the store's Get")
		case "create":
			check(fmt.Sprintf("create = 1 read + 1 transaction (%d tokens)", r.Tokens), ops,
				r.Ops["GetItem"] == 1 && r.Ops["TransactWriteItems"] == 1 && r.RequestsMax == 2,
				"a retry after a lost race, or extra reads: see the store's Create")
		case "list page 1":
			check(fmt.Sprintf("list page 1 <= 2 requests (%d tokens)", r.Tokens), ops, r.RequestsMax <= 2,
				"page 1 reads beyond its first Query: see the store's List")
		case "search by keyword":
			pages := 1 + int(math.Ceil(float64(r.Tokens*max(res.LargestItemBytes, 1))/(1<<20)))
			check(fmt.Sprintf("search by keyword: linear, no per-match round trip (%d tokens: <= %d requests)", r.Tokens, pages), ops,
				r.RequestsMax <= pages, "search makes a request per match or per small page")
		}
	}
	for _, r := range res.Verify {
		want := map[string]int{"verify (warm)": 1, "verify+consume": 2, "verify+consume, 3 windows": 2, "first use of a key": 2, "rpm_limit set": 2, "malformed key": 0,
			"hold (request id)": 2, "settle (request id)": 2, "refund (request id)": 2, "duplicate hold (request id)": 1}[r.Name]
		check(fmt.Sprintf("%s = %d request(s)", r.Name, want), fmt.Sprintf("median %d, max %d (%s)", r.RequestsMedian, r.RequestsMax, opsString(r.Ops)),
			r.RequestsMedian == want,
			"see internal/verify: the per-minute accessed_time touch or an uncached lookup adds requests")
	}
	for _, f := range res.Functions {
		check(fmt.Sprintf("%s binary <= 10 MiB (10485760 bytes)", f.Function), fmt.Sprintf("%d bytes = %.2f MiB", f.BinaryBytes, float64(f.BinaryBytes)/(1<<20)), f.BinaryBytes <= 10<<20,
			"the AWS SDK's dynamodb client and its dependencies dominate; dropping config.LoadDefaultConfig's unused credential providers (sso, ssooidc, sts) would shrink it")
		check(fmt.Sprintf("%s init < 50 ms", f.Function), fmt.Sprintf("median %.1f ms", f.InitMedianMs), f.InitMedianMs < 50,
			"init loads the AWS config and builds the client; RIE on this 2-core machine also counts process start")
	}
	res.Targets = ts
}

func opsString(ops map[string]float64) string {
	if len(ops) == 0 {
		return "none"
	}
	var parts []string
	for _, op := range []string{"GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem", "Scan"} {
		if v, ok := ops[op]; ok {
			parts = append(parts, fmt.Sprintf("%s %s", trimFloat(v), op))
		}
	}
	return strings.Join(parts, " + ")
}

func trimFloat(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func writeResults(dir string, res *Results) error {
	evaluate(res)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	var sb strings.Builder
	writeMarkdown(&sb, res)
	return os.WriteFile(filepath.Join(dir, "RESULTS.md"), []byte(sb.String()), 0o644)
}

// Sections are the headings RESULTS.md always has, in order.
var Sections = []string{
	"## Machine",
	"## Targets",
	"## DynamoDB work per call",
	"## In-process latency and allocations",
	"## Through the local runner over HTTP",
	"## Binary size and cold start",
	"## Cost per million calls in AWS",
	"## Minimum possible DynamoDB work vs ours",
}

func writeMarkdown(w io.Writer, res *Results) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	m := res.Machine
	p("# Benchmark results")
	p("")
	p("Written by `make bench` (cmd/bench) on %s in %s. Do not edit: rerun it.", res.Started, res.Elapsed)
	p("")
	p(Sections[0])
	p("")
	p("- CPU: %s, %d cores", m.CPU, m.Cores)
	p("- Memory: %s", m.MemoryGB)
	p("- Go: %s; OS: %s", m.GoVersion, m.OS)
	p("- DynamoDB Local: %s (%s), on the same machine over loopback", m.DynamoDBLocal, m.Java)
	p("")
	p(Sections[1])
	p("")
	p("| goal | got | met | why missed, and what would fix it |")
	p("|---|---|---|---|")
	for _, t := range res.Targets {
		met := "yes"
		if !t.Met {
			met = "**no**"
		}
		p("| %s | %s | %s | %s |", t.Goal, t.Got, met, t.Why)
	}
	for _, s := range res.Skipped {
		p("")
		p("Not measured: %s.", s)
	}
	p("")
	p(Sections[2])
	p("")
	p("Counted by an SDK middleware on the store's client (internal/ddbcount: every request sent, retries included; ReturnConsumedCapacity TOTAL on every input, ConsumedCapacity summed from every output). Mean per call over the measured calls. RRU/WRU are on-demand request units by AWS's rules: DynamoDB Local's ConsumedCapacity for single-item operations, queries and batches; for TransactWriteItems DynamoDB Local reports 2.0 units per transaction whatever it holds, so transactions are counted as AWS bills them, 2 WRU per item per started KB (Put sizes from the request; every other item is one the bench wrote, the largest %d bytes, so 2 WRU each). The `tx local` and `tx AWS` columns show both.", res.LargestItemBytes)
	p("")
	p("| operation | tokens | requests (median / max) | by operation (mean) | Local RCU | Local WCU | tx local | tx AWS WRU | RRU | WRU |")
	p("|---|---|---|---|---|---|---|---|---|---|")
	all := append(append(append([]Row(nil), res.Endpoints...), res.Authorizer), res.Verify...)
	for _, r := range all {
		p("| %s | %s | %d / %d | %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |", r.Name, tokens(r), r.RequestsMedian, r.RequestsMax, opsString(r.Ops), r.LocalRCU, r.LocalWCU, r.TxLocalUnits, r.TxAWSUnits, r.RRU, r.WRU)
	}
	p("")
	p(Sections[3])
	p("")
	p("The real handlers (api.LambdaHandler over httpadapter V2 with a payload 2.0 event; verify through its Lambda Invoke handler; the authorizer's Handle) over the real DynamoDB store and DynamoDB Local, in this process, one call at a time. Allocations are runtime.MemStats deltas around each call (the AWS SDK's included). Log lines are formatted as JSON and dropped.")
	p("")
	p("| operation | tokens | calls | p50 | p99 | mean | allocs/call | KB/call |")
	p("|---|---|---|---|---|---|---|---|")
	for _, r := range all {
		p("| %s | %s | %d | %.2f ms | %.2f ms | %.2f ms | %.0f | %.1f |", r.Name, tokens(r), r.Calls, r.P50Micros/1000, r.P99Micros/1000, r.MeanMicros/1000, r.AllocsPerCall, r.BytesPerCall/1024)
	}
	p("")
	p(Sections[4])
	p("")
	if len(res.HTTP) == 0 {
		p("Skipped (-skip-http).")
	} else {
		p("tools/stack in this process (API Gateway emulation: routing, the Lambda authorizer on every request, payload 2.0), each function under RIE with up to as many instances as clients, a Go HTTP client with keep-alive; instances warmed first. A user with 100 tokens.")
		p("")
		p("| request | clients | requests | errors | req/s | p50 | p99 |")
		p("|---|---|---|---|---|---|---|")
		for _, h := range res.HTTP {
			p("| %s | %d | %d | %d | %.0f | %.2f ms | %.2f ms |", h.Name, h.Concurrency, h.Requests, h.Errors, h.PerSecond, h.P50Millis, h.P99Millis)
		}
	}
	p("")
	p(Sections[5])
	p("")
	if len(res.Functions) == 0 {
		p("Skipped (-skip-cold).")
	} else {
		p("Size: stripped linux/arm64 binary built as `make build` does (CGO_ENABLED=0, -trimpath -tags lambda.norpc -ldflags='-s -w -buildid='). Init: RIE's INIT REPORT of the host build under the local runner, each run a fresh instance (a new pool), median of the runs.")
		p("")
		p("| function | memory | binary | init median | init runs |")
		p("|---|---|---|---|---|")
		for _, f := range res.Functions {
			runs := make([]string, len(f.InitMillis))
			for i, v := range f.InitMillis {
				runs[i] = fmt.Sprintf("%.1f", v)
			}
			p("| %s | %d MB | %.2f MiB | %.1f ms | %s |", f.Function, f.MemoryMB, float64(f.BinaryBytes)/(1<<20), f.InitMedianMs, strings.Join(runs, ", "))
		}
	}
	p("")
	p(Sections[6])
	p("")
	pr := res.Prices
	p("Prices (%s): Lambda arm64 $%.10f per GB-s and $%.2f per 1M requests; HTTP API $%.2f per 1M; DynamoDB on-demand $%.3f per 1M RRU, $%.3f per 1M WRU. Source and date: %s", pr.Region, pr.LambdaGBSecond, pr.LambdaPerMillion, pr.HTTPAPIPerMillion, pr.RRUPerMillion, pr.WRUPerMillion, pr.Source)
	p("")
	p("Lambda duration is the in-process p50 rounded up to the billed millisecond, at the template's MemorySize; it leaves out network time to the real DynamoDB and is an estimate. HTTP endpoints also pay the authorizer (a Lambda call and its read; AuthorizerCacheSeconds is 0 by default) and the HTTP API request; verify is a direct Lambda Invoke. USD per million calls:")
	p("")
	p("| operation | tokens | billed ms | Lambda | authorizer | HTTP API | DynamoDB | total |")
	p("|---|---|---|---|---|---|---|---|")
	for _, c := range res.Costs {
		tk := "-"
		if c.Tokens > 0 {
			tk = fmt.Sprint(c.Tokens)
		}
		p("| %s | %s | %.0f | %.3f | %.3f | %.2f | %.3f | %.3f |", c.Name, tk, c.BilledMs, c.Lambda, c.Authorizer, c.HTTPAPI, c.DynamoDB, c.Total)
	}
	p("")
	p(Sections[7])
	p("")
	p("| operation | tokens | minimum possible | ours (requests by operation; RRU / WRU) |")
	p("|---|---|---|---|")
	for _, r := range all {
		p("| %s | %s | %s | %s; %.2f / %.2f |", r.Name, tokens(r), r.Minimum, opsString(r.Ops), r.RRU, r.WRU)
	}
}

func tokens(r Row) string {
	if r.Tokens == 0 {
		return "-"
	}
	return fmt.Sprint(r.Tokens)
}

func printSummary(w io.Writer, res *Results) {
	fmt.Fprintf(w, "bench: done in %s; results in RESULTS.md and results.json\n", res.Elapsed)
	for _, r := range res.Endpoints {
		if r.Name == "get" || r.Name == "list page 1" || r.Name == "create" || r.Name == "search by keyword" {
			fmt.Fprintf(w, "  %-20s %5d tokens: %s, p50 %.2f ms p99 %.2f ms, %.0f allocs\n", r.Name, r.Tokens, opsString(r.Ops), r.P50Micros/1000, r.P99Micros/1000, r.AllocsPerCall)
		}
	}
	for _, r := range res.Verify {
		fmt.Fprintf(w, "  %-20s: %s, p50 %.2f ms\n", r.Name, opsString(r.Ops), r.P50Micros/1000)
	}
	for _, h := range res.HTTP {
		fmt.Fprintf(w, "  http %-24s x%-2d: %.0f req/s, p50 %.2f ms p99 %.2f ms, %d errors\n", h.Name, h.Concurrency, h.PerSecond, h.P50Millis, h.P99Millis, h.Errors)
	}
	for _, f := range res.Functions {
		fmt.Fprintf(w, "  %-26s %.2f MiB, init %.1f ms\n", f.Function, float64(f.BinaryBytes)/(1<<20), f.InitMedianMs)
	}
	missed := 0
	for _, t := range res.Targets {
		if !t.Met {
			missed++
			fmt.Fprintf(w, "  MISSED: %s: %s\n", t.Goal, t.Got)
		}
	}
	fmt.Fprintf(w, "  targets: %d of %d met\n", len(res.Targets)-missed, len(res.Targets))
}
