package verify

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/llmgw/token-service/internal/token"
)

// EnvRequestRecordSeconds is the environment variable the template sets
// from its parameter RequestRecordSeconds.
const EnvRequestRecordSeconds = "REQUEST_RECORD_SECONDS"

// RecordLifetimeFromEnv reads REQUEST_RECORD_SECONDS through getenv
// (os.Getenv in the function): how long a request record lasts after its
// last write, a positive number of seconds; token.DefaultRequestRecordSeconds
// when unset.
func RecordLifetimeFromEnv(getenv func(string) string) (time.Duration, error) {
	s := strings.TrimSpace(getenv(EnvRequestRecordSeconds))
	if s == "" {
		return token.DefaultRequestRecordSeconds * time.Second, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	// Past a century the Duration would overflow; no record needs as long.
	if err != nil || n < 1 || n > 100*365*86400 {
		return 0, fmt.Errorf("config: %s must be a positive number of seconds, got %q", EnvRequestRecordSeconds, s)
	}
	return time.Duration(n) * time.Second, nil
}
