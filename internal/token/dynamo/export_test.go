package dynamo

import "time"

// SetRetry shortens the retry policy of c for tests of the retry loops.
func SetRetry(c *Core, attempts int, base, max time.Duration) {
	c.retry = retryPolicy{attempts: attempts, base: base, max: max}
}
