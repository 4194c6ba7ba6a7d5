package dynamo_test

import (
	"context"
	"testing"

	"github.com/llmgw/token-service/internal/token"
)

// A verify write with a request record is a transaction; DynamoDB cancels
// one that races another write of its items with TransactionConflict
// (never DynamoDB Local), and the ledger sends the same transaction again.
func TestLedgerWriteRetriesTransactionConflict(t *testing.T) {
	for _, tt := range conflictCases {
		t.Run(tt.name, func(t *testing.T) {
			api := &conflictAPI{conflicts: tt.conflicts}
			s := newFakeStore(t, api)
			read := token.VerifyState{Token: token.Token{
				ID: 7, UserID: "u", KeyHash: "h", Status: token.StatusEnabled, ExpiredTime: token.NeverExpires, RemainQuota: 100,
			}}
			rec := &token.Request{ID: "r", State: token.RequestHeld, Charged: 30, FromRemain: 30, Delta: 30, Rev: 1, ExpiresAt: now.Unix() + 60}
			next, written, err := s.ledger.Write(context.Background(), read, token.Write{Consume: 30, Record: rec}, now)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Write error = %v, want error: %v", err, tt.wantErr)
			}
			if api.txCalls != tt.wantTxCalls {
				t.Errorf("TransactWriteItems called %d times, want %d", api.txCalls, tt.wantTxCalls)
			}
			if api.gets != 0 {
				t.Errorf("%d reads between attempts, want none (a conflict is not a changed item)", api.gets)
			}
			if tt.wantErr {
				return
			}
			if !written || next.Token.RemainQuota != 70 || next.Token.UsedQuota != 30 || next.Request == nil || *next.Request != *rec {
				t.Errorf("written %v, state %+v; want the hold applied", written, next)
			}
		})
	}
}
