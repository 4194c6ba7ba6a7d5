package verify_test

import (
	"context"
	"testing"

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
