// Package config reads a Lambda function's configuration from its
// environment and sets up its logging. It links no AWS SDK: the console
// function, which reads no table, uses it alone; the functions that do build
// their clients in package app.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/llmgw/token-service/internal/token"
)

// Defaults of the environment beyond the domain's own
// (token.DefaultMaxTokensPerUser, token.DefaultRevealsPerMinute).
const (
	DefaultAllowedGroups = "default"
	DefaultLogLevel      = slog.LevelInfo
)

// Config is a function's configuration, read from the environment.
type Config struct {
	TableName        string   // TABLE_NAME, required
	AllowedGroups    []string // ALLOWED_GROUPS, comma-separated, default "default"
	MaxTokensPerUser int      // MAX_TOKENS_PER_USER, default token.DefaultMaxTokensPerUser
	// SealingKey (SEALING_KEY, base64 of 32 bytes) is the development
	// sealer of local runs (the local runner, sam local); it is refused
	// unless AWS_SAM_LOCAL is "true", so that no deployed function ever seals
	// with a key that sits in its environment.
	SealingKey string
	// KMSKeyID (KMS_KEY_ID, the key's ARN) selects the KMS sealer; the
	// template sets it only for the functions that seal or open keys.
	KMSKeyID         string
	RevealsPerMinute int        // REVEALS_PER_MINUTE, default token.DefaultRevealsPerMinute
	LogLevel         slog.Level // LOG_LEVEL, default INFO
	// AcceptLegacyKeys (ACCEPT_LEGACY_KEYS, "true" or "false", default
	// false): keys without a checksum (imported from new-api or one-api)
	// are looked up by verify, usage by key and search by exact key.
	AcceptLegacyKeys bool
	// AcceptLegacyAccessTokens (ACCEPT_LEGACY_ACCESS_TOKENS, default false):
	// the authorizer accepts imported legacy access tokens.
	AcceptLegacyAccessTokens bool
	// BudgetTimezone (BUDGET_TIMEZONE, an IANA zone name; "" is UTC) is the
	// deployment's default zone of spend windows, for tokens without a
	// budget_timezone of their own. Load refuses a zone it cannot load.
	BudgetTimezone string
}

// Load reads the configuration through getenv (os.Getenv in a function).
// KMS_KEY_ID or SEALING_KEY is required only when needSealingKey is set.
func Load(getenv func(string) string, needSealingKey bool) (Config, error) {
	c := Config{
		TableName:  strings.TrimSpace(getenv("TABLE_NAME")),
		SealingKey: strings.TrimSpace(getenv("SEALING_KEY")),
		KMSKeyID:   strings.TrimSpace(getenv("KMS_KEY_ID")),
	}
	if c.TableName == "" {
		return Config{}, errors.New("config: TABLE_NAME is required")
	}
	groups := getenv("ALLOWED_GROUPS")
	if strings.TrimSpace(groups) == "" {
		groups = DefaultAllowedGroups
	}
	for _, g := range strings.Split(groups, ",") {
		if g = strings.TrimSpace(g); g != "" {
			c.AllowedGroups = append(c.AllowedGroups, g)
		}
	}
	var err error
	if c.MaxTokensPerUser, err = positive(getenv, "MAX_TOKENS_PER_USER", token.DefaultMaxTokensPerUser); err != nil {
		return Config{}, err
	}
	if c.RevealsPerMinute, err = positive(getenv, "REVEALS_PER_MINUTE", token.DefaultRevealsPerMinute); err != nil {
		return Config{}, err
	}
	if c.LogLevel, err = LogLevel(getenv); err != nil {
		return Config{}, err
	}
	if c.AcceptLegacyKeys, err = boolean(getenv, "ACCEPT_LEGACY_KEYS"); err != nil {
		return Config{}, err
	}
	if c.AcceptLegacyAccessTokens, err = boolean(getenv, "ACCEPT_LEGACY_ACCESS_TOKENS"); err != nil {
		return Config{}, err
	}
	c.BudgetTimezone = strings.TrimSpace(getenv("BUDGET_TIMEZONE"))
	if _, err := token.LoadZone(c.BudgetTimezone, ""); err != nil {
		return Config{}, fmt.Errorf("config: BUDGET_TIMEZONE must be an IANA zone name such as UTC or Asia/Shanghai, got %q", c.BudgetTimezone)
	}
	if c.SealingKey != "" && getenv("AWS_SAM_LOCAL") != "true" {
		return Config{}, errors.New("config: SEALING_KEY is a development key for local runs (AWS_SAM_LOCAL=true); in AWS the stack's KMS key (KMS_KEY_ID) seals")
	}
	if needSealingKey && c.SealingKey == "" && c.KMSKeyID == "" {
		return Config{}, errors.New("config: KMS_KEY_ID is required (or, in a local run, SEALING_KEY)")
	}
	return c, nil
}

// positive reads the positive integer variable name, def when it is unset.
func positive(getenv func(string) string, name string, def int) (int, error) {
	s := strings.TrimSpace(getenv(name))
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("config: %s must be a positive integer, got %q", name, s)
	}
	return n, nil
}

// boolean reads the variable name: "true" or "false" (any case), false
// when unset. Anything else is an error rather than a guess, since these
// switches widen what is accepted.
func boolean(getenv func(string) string, name string) (bool, error) {
	switch s := strings.ToLower(strings.TrimSpace(getenv(name))); s {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	default:
		return false, fmt.Errorf("config: %s must be true or false, got %q", name, s)
	}
}

// LogLevel reads LOG_LEVEL through getenv: DEBUG, INFO, WARN or ERROR (any
// case), DefaultLogLevel when unset.
func LogLevel(getenv func(string) string) (slog.Level, error) {
	level := DefaultLogLevel
	if s := strings.TrimSpace(getenv("LOG_LEVEL")); s != "" {
		if err := level.UnmarshalText([]byte(s)); err != nil {
			return 0, fmt.Errorf("config: LOG_LEVEL must be DEBUG, INFO, WARN or ERROR, got %q", s)
		}
	}
	return level, nil
}

// BudgetZone is the zone of BudgetTimezone (UTC when it is empty), which
// Load has checked.
func (c Config) BudgetZone() *time.Location {
	loc, err := token.LoadZone(c.BudgetTimezone, "")
	if err != nil {
		return time.UTC
	}
	return loc
}

// Rules are the validation rules of the configuration.
func (c Config) Rules() token.Rules { return token.Rules{AllowedGroups: c.AllowedGroups} }

// SetLogger makes a JSON slog logger on stdout (CloudWatch) the default,
// tagged with the Lambda function's name.
func SetLogger(level slog.Level) {
	h := slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: level})
	l := slog.New(h)
	if fn := os.Getenv("AWS_LAMBDA_FUNCTION_NAME"); fn != "" {
		l = l.With("function", fn)
	}
	slog.SetDefault(l)
}
