// Package ddbcount counts the DynamoDB requests a client makes, by operation,
// with an SDK middleware: what tests and benchmarks use to check how much
// DynamoDB work an endpoint does, without guessing.
package ddbcount

import (
	"context"
	"maps"
	"sync"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"
)

// Counter counts requests per operation name ("GetItem", "Query", ...).
// Its zero value is ready; it is safe for concurrent use.
type Counter struct {
	mu       sync.Mutex
	counts   map[string]int
	capacity map[string]Capacity
}

// Option installs the counter on a DynamoDB client:
// dynamodb.NewFromConfig(cfg, counter.Option).
func (c *Counter) Option(o *dynamodb.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		// After the retry middleware: every attempt sent is one request.
		return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("ddbcount",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				c.add(awsmiddleware.GetOperationName(ctx))
				return next.HandleFinalize(ctx, in)
			}), middleware.After)
	})
}

func (c *Counter) add(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = make(map[string]int)
	}
	c.counts[op]++
}

// Counts returns a copy of the counts so far.
func (c *Counter) Counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts)
}

// Total returns the number of requests so far.
func (c *Counter) Total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.counts {
		n += v
	}
	return n
}

// Reset forgets the counts and the capacity.
func (c *Counter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.counts)
	clear(c.capacity)
}
