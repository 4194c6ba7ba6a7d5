package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmgw/token-service/internal/auth"
	"github.com/llmgw/token-service/tools/stack"
)

// HTTPRow is one load run through the local runner.
type HTTPRow struct {
	Name        string  `json:"name"`
	Concurrency int     `json:"concurrency"`
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"requests_per_second"`
	P50Millis   float64 `json:"p50_ms"`
	P99Millis   float64 `json:"p99_ms"`
}

// startStack builds the functions for the host and starts the runner's
// pools (instances start on first use).
func (e *env) startStack(ctx context.Context, functions []string, maxInstances int) (*stack.Stack, error) {
	return stack.Start(ctx, stack.Config{
		Template: e.tmpl, Root: e.root, LocalDir: filepath.Join(e.root, ".local"),
		DynamoDBEndpoint: e.ddb.Endpoint, Functions: functions, MaxInstances: maxInstances, Output: io.Discard,
		SealingKey: e.sealingKey,
	})
}

// measureHTTP drives get and list page 1 through the local runner (RIE
// instances of the authorizer and the function, API Gateway emulation) with
// concurrent clients.
func (e *env) measureHTTP(ctx context.Context, o options) ([]HTTPRow, error) {
	maxConc := slices.Max(o.concurrency)
	s, err := e.startStack(ctx, []string{"AuthorizerFunction", "GetTokenFunction", "ListTokensFunction"}, maxConc)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	srv := httptest.NewServer(stack.NewAPI(e.tmpl, s.Pools, slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()

	const user = "bench-http"
	toks, err := e.createTokens(ctx, user, "http", 100)
	if err != nil {
		return nil, err
	}
	at, err := auth.NewAccessToken()
	if err != nil {
		return nil, err
	}
	if err := e.access.PutAccessToken(ctx, auth.Hash(at), auth.Principal{UserID: user, Role: auth.RoleUser}); err != nil {
		return nil, err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: maxConc}, Timeout: 30 * time.Second}
	do := func(path string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+at)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %d %.200s", path, resp.StatusCode, body)
		}
		return nil
	}
	targets := []struct{ name, path string }{
		{"get (100 tokens)", fmt.Sprintf("/api/token/%d", toks[50].ID)},
		{"list page 1 (100 tokens)", "/api/token/?p=1&size=20"},
	}
	var rows []HTTPRow
	for _, t := range targets {
		for _, c := range o.concurrency {
			// Warm: start c instances of each function, unmeasured.
			var wg sync.WaitGroup
			var warmErr atomic.Value
			for range c {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := do(t.path); err != nil {
						warmErr.Store(err)
					}
				}()
			}
			wg.Wait()
			if err, ok := warmErr.Load().(error); ok {
				return nil, fmt.Errorf("runner warm-up: %w", err)
			}
			rows = append(rows, load(t.name, c, o.httpRequests, o.httpTime, func() error { return do(t.path) }))
		}
	}
	return rows, nil
}

// load runs do from c goroutines until total requests or d have passed.
func load(name string, c, total int, d time.Duration, do func() error) HTTPRow {
	var (
		next   atomic.Int64
		errs   atomic.Int64
		mu     sync.Mutex
		lat    []time.Duration
		wg     sync.WaitGroup
		start  = time.Now()
		expiry = start.Add(d)
	)
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(total) && time.Now().Before(expiry) {
				t0 := time.Now()
				err := do()
				el := time.Since(t0)
				if err != nil {
					errs.Add(1)
					continue
				}
				mu.Lock()
				lat = append(lat, el)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	slices.Sort(lat)
	n := len(lat) + int(errs.Load())
	return HTTPRow{
		Name: name, Concurrency: c, Requests: n, Errors: int(errs.Load()), Seconds: secs,
		PerSecond: float64(len(lat)) / secs,
		P50Millis: micros(percentile(lat, 0.5)) / 1000, P99Millis: micros(percentile(lat, 0.99)) / 1000,
	}
}

// FunctionRow is one function's binary and cold start.
type FunctionRow struct {
	Function     string    `json:"function"`
	MemoryMB     int       `json:"memory_mb"`
	BinaryBytes  int64     `json:"binary_bytes"`
	InitMillis   []float64 `json:"init_ms"`
	InitMedianMs float64   `json:"init_median_ms"`
}

// measureFunctions builds every function as `make build` does and measures
// its init duration under RIE on fresh instances.
func (e *env) measureFunctions(ctx context.Context, o options) ([]FunctionRow, error) {
	ids := o.functions
	if ids == nil {
		for id := range e.tmpl.Functions {
			ids = append(ids, id)
		}
		sort.Strings(ids)
	}
	dir, err := os.MkdirTemp("", "bench-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	s, err := e.startStack(ctx, ids, 1)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	rie, err := stack.BuildRIE(ctx, e.root, filepath.Join(e.root, ".local", "bin"))
	if err != nil {
		return nil, err
	}
	// A request no function fails on: HTTP functions answer 401 (no
	// verdict), the authorizer denies, verify answers not_found.
	payload, _ := json.Marshal(map[string]any{
		"version": "2.0", "rawPath": "/api/token/1", "key": "sk-x",
		"headers":        map[string]string{},
		"requestContext": map[string]any{"http": map[string]string{"method": "GET", "path": "/api/token/1"}},
	})
	var rows []FunctionRow
	for _, id := range ids {
		fn := e.tmpl.Functions[id]
		if fn == nil {
			return nil, fmt.Errorf("no function %s in the template", id)
		}
		out := filepath.Join(dir, id, "bootstrap")
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-tags", "lambda.norpc", "-ldflags=-s -w -buildid=", "-o", out, "./"+fn.CodeDir)
		cmd.Dir = e.tmpl.Dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build %s: %v: %s", id, err, b)
		}
		st, err := os.Stat(out)
		if err != nil {
			return nil, err
		}
		r := FunctionRow{Function: id, MemoryMB: fn.MemorySize, BinaryBytes: st.Size()}
		bootstrap := s.Bootstraps[id]
		for range o.coldRuns {
			p := stack.NewPool(stack.PoolConfig{
				Name: id, RIE: rie, Bootstrap: bootstrap,
				Env: stack.FunctionEnv(fn, stack.LocalEnv{
					TaskRoot: filepath.Dir(bootstrap), DynamoDBEndpoint: e.ddb.Endpoint, SealingKey: e.sealingKey,
				}),
				Timeout: fn.Timeout, MaxInstances: 1, Output: io.Discard,
			})
			inv, err := p.Invoke(ctx, payload)
			p.Close()
			if err != nil {
				return nil, fmt.Errorf("cold start of %s: %w", id, err)
			}
			if !inv.Cold || inv.InitDuration == 0 {
				return nil, fmt.Errorf("cold start of %s: no INIT REPORT", id)
			}
			r.InitMillis = append(r.InitMillis, micros(inv.InitDuration)/1000)
		}
		sorted := slices.Clone(r.InitMillis)
		slices.Sort(sorted)
		r.InitMedianMs = sorted[len(sorted)/2]
		rows = append(rows, r)
	}
	return rows, nil
}
