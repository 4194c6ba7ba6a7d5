package api

import (
	"time"

	"github.com/llmgw/token-service/internal/token"
)

// KeyOption is an option of an endpoint: how one that takes a whole key
// (usage by key, search by exact key) reads it (AcceptLegacyKeys), and the
// zone in which one that shows tokens computes their budget_usage
// (BudgetZone).
type KeyOption func(*keyOptions)

type keyOptions struct {
	acceptLegacy bool
	budgetZone   *time.Location // nil: UTC
}

// AcceptLegacyKeys makes the endpoint accept, when accept is set (template
// parameter AcceptLegacyKeys), a key of the right shape whose checksum
// fails: the keys cmd/admin import brings from new-api and one-api. Such a
// key then costs the lookup a key with a checksum costs; without the option
// it is refused without a store call (usage) or searched as a fragment
// (search), as before.
func AcceptLegacyKeys(accept bool) KeyOption {
	return func(o *keyOptions) { o.acceptLegacy = accept }
}

func readKeyOptions(opts []KeyOption) keyOptions {
	var o keyOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// keyParser is the key parser the options select (token.KeyParser).
func keyParser(opts []KeyOption) func(string) (string, error) {
	return token.KeyParser(readKeyOptions(opts).acceptLegacy)
}
