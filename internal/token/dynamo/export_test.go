package dynamo

import "time"

// SetRetry shortens the retry policy of s for tests of the retry loops.
func SetRetry(s *Store, attempts int, base, max time.Duration) {
	s.retry = retryPolicy{attempts: attempts, base: base, max: max}
}
