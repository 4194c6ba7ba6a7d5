package verify_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/llmgw/token-service/internal/token"
)

// BenchmarkVerify is a warm verify (cached mapping): one BatchGetItem.
func BenchmarkVerify(b *testing.B) {
	e := newEnv(b)
	tok := e.create(b, "u1", spec())
	req := token.VerifyRequest{Key: tok.Key, Model: "gpt-4", ClientIP: "10.0.0.1"}
	e.verify(b, req, now)
	b.ReportAllocs()
	for b.Loop() {
		if a, err := e.verifier.Verify(context.Background(), req, now); err != nil || !a.Valid {
			b.Fatalf("%+v %v", a, err)
		}
	}
}

// BenchmarkVerifyConsume is a warm verify that charges 1 of an unlimited
// token: one BatchGetItem and one conditional UpdateItem.
func BenchmarkVerifyConsume(b *testing.B) {
	e := newEnv(b)
	s := spec()
	s.UnlimitedQuota = true
	tok := e.create(b, "u1", s)
	req := token.VerifyRequest{Key: tok.Key, Model: "gpt-4", ClientIP: "10.0.0.1", Consume: 1}
	e.verify(b, req, now)
	b.ReportAllocs()
	for b.Loop() {
		if a, err := e.verifier.Verify(context.Background(), req, now); err != nil || !a.Valid {
			b.Fatalf("%+v %v", a, err)
		}
	}
}

// TestVerifyLatency logs p50/p99 of 500 warm verifies (and 500 with a
// consume) in-process against DynamoDB Local, after 200 unmeasured ones. Not a pass/fail measure;
// skipped with -short.
func TestVerifyLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("latency measure")
	}
	e := newEnv(t)
	s := spec()
	s.UnlimitedQuota = true
	tok := e.create(t, "u1", s)
	for _, tc := range []struct {
		name    string
		consume int64
	}{{"verify", 0}, {"verify+consume", 1}} {
		req := token.VerifyRequest{Key: tok.Key, Consume: tc.consume}
		for range 200 { // warm DynamoDB Local's JIT and the connection pool
			e.verify(t, req, now)
		}
		d := make([]time.Duration, 500)
		for i := range d {
			start := time.Now()
			wantCode(t, tc.name, e.verify(t, req, now), "")
			d[i] = time.Since(start)
		}
		slices.Sort(d)
		t.Logf("%s: 500 warm calls: p50 %v p99 %v max %v", tc.name, d[249], d[494], d[499])
	}
}
