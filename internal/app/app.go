// Package app is the composition root the Lambda functions share: it reads
// their configuration from the environment, sets up logging, builds the AWS
// client and the DynamoDB store once per container, and starts the Lambda
// runtime loop. Each functions/<name>/main.go is wiring over it.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/llmgw/token-service/internal/api"
	"github.com/llmgw/token-service/internal/seal"
	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/token/dynamo"
)

// Defaults of the environment.
const (
	DefaultAllowedGroups    = "default"
	DefaultMaxTokensPerUser = 1000
	DefaultRevealsPerMinute = token.DefaultRevealsPerMinute
)

// Config is a function's configuration, read from the environment.
type Config struct {
	TableName        string   // TABLE_NAME, required
	AllowedGroups    []string // ALLOWED_GROUPS, comma-separated, default "default"
	MaxTokensPerUser int      // MAX_TOKENS_PER_USER, default 1000
	// SealingKey (SEALING_KEY, base64 of 32 bytes) is the development
	// sealer of local runs (the local runner, sam local); it is refused
	// unless AWS_SAM_LOCAL is "true", so that no deployed function ever seals
	// with a key that sits in its environment.
	SealingKey string
	// KMSKeyID (KMS_KEY_ID, the key's ARN) selects the KMS sealer; the
	// template sets it only for the functions that seal or open keys.
	KMSKeyID         string
	RevealsPerMinute int // REVEALS_PER_MINUTE, default 30
	LogLevel         slog.Level
}

// LoadConfig reads the configuration through getenv (os.Getenv in a
// function). KMS_KEY_ID or SEALING_KEY is required only when
// needSealingKey is set.
func LoadConfig(getenv func(string) string, needSealingKey bool) (Config, error) {
	c := Config{
		TableName:        strings.TrimSpace(getenv("TABLE_NAME")),
		MaxTokensPerUser: DefaultMaxTokensPerUser,
		SealingKey:       strings.TrimSpace(getenv("SEALING_KEY")),
		KMSKeyID:         strings.TrimSpace(getenv("KMS_KEY_ID")),
		RevealsPerMinute: DefaultRevealsPerMinute,
		LogLevel:         slog.LevelInfo,
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
	if s := strings.TrimSpace(getenv("MAX_TOKENS_PER_USER")); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return Config{}, fmt.Errorf("config: MAX_TOKENS_PER_USER must be a positive integer, got %q", s)
		}
		c.MaxTokensPerUser = n
	}
	if s := strings.TrimSpace(getenv("REVEALS_PER_MINUTE")); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return Config{}, fmt.Errorf("config: REVEALS_PER_MINUTE must be a positive integer, got %q", s)
		}
		c.RevealsPerMinute = n
	}
	if s := strings.TrimSpace(getenv("LOG_LEVEL")); s != "" {
		if err := c.LogLevel.UnmarshalText([]byte(s)); err != nil {
			return Config{}, fmt.Errorf("config: LOG_LEVEL must be DEBUG, INFO, WARN or ERROR, got %q", s)
		}
	}
	if c.SealingKey != "" && getenv("AWS_SAM_LOCAL") != "true" {
		return Config{}, errors.New("config: SEALING_KEY is a development key for local runs (AWS_SAM_LOCAL=true); in AWS the stack's KMS key (KMS_KEY_ID) seals")
	}
	if needSealingKey && c.SealingKey == "" && c.KMSKeyID == "" {
		return Config{}, errors.New("config: KMS_KEY_ID is required (or, in a local run, SEALING_KEY)")
	}
	return c, nil
}

// Rules are the validation rules of the configuration.
func (c Config) Rules() token.Rules { return token.Rules{AllowedGroups: c.AllowedGroups} }

// Options say what a function needs beyond the store.
type Options struct {
	// KMS is set by the functions that write or open sealed keys (create,
	// rotate, reveal), to kmsseal.New; KMS_KEY_ID or SEALING_KEY is then
	// required. The others leave it nil: they get NoSealer, and the KMS SDK
	// stays out of their binaries.
	KMS KMSSealerFunc
}

// KMSSealerFunc builds the KMS sealer of a key (kmsseal.New).
type KMSSealerFunc func(cfg aws.Config, keyID string) (token.Sealer, error)

// App is what a function's handler is built from.
type App struct {
	Config Config
	Store  *dynamo.Store
	Rules  token.Rules
	Clock  api.Clock
}

// New reads the environment, sets the default JSON logger and builds the
// store. Call it once, in main, outside the handler.
func New(ctx context.Context, opts Options) (*App, error) {
	cfg, err := LoadConfig(os.Getenv, opts.KMS != nil)
	if err != nil {
		return nil, err
	}
	SetLogger(cfg.LogLevel)
	awsCfg, err := AWSConfig()
	if err != nil {
		return nil, err
	}
	dc := dynamo.Config{
		Client:           dynamodb.NewFromConfig(awsCfg),
		Table:            cfg.TableName,
		MaxTokensPerUser: cfg.MaxTokensPerUser,
	}
	var newKMS func(keyID string) (token.Sealer, error)
	if opts.KMS != nil {
		newKMS = func(keyID string) (token.Sealer, error) { return opts.KMS(awsCfg, keyID) }
	}
	dc.Sealer, err = NewSealer(cfg, newKMS)
	if err != nil {
		return nil, err
	}
	store, err := dynamo.New(dc)
	if err != nil {
		return nil, fmt.Errorf("build store: %w", err)
	}
	return &App{Config: cfg, Store: store, Rules: cfg.Rules(), Clock: time.Now}, nil
}

// AWSConfig is the SDK configuration of a function, from the environment
// Lambda gives it: AWS_REGION, the execution role's AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, and AWS_ENDPOINT_URL and
// AWS_ENDPOINT_URL_<SERVICE> (the local runner's DynamoDB Local), all read by
// the SDK's own config.NewEnvConfig; each client resolves its service's
// endpoint from it. config.LoadDefaultConfig would resolve the same values
// in Lambda but also links the SSO, STS and IMDS providers, 1.2 MB more in
// every binary, none of which a function uses.
func AWSConfig() (aws.Config, error) {
	env, err := config.NewEnvConfig()
	if err != nil {
		return aws.Config{}, fmt.Errorf("load aws config: %w", err)
	}
	if env.Region == "" {
		return aws.Config{}, errors.New("load aws config: AWS_REGION is not set")
	}
	cfg := aws.Config{
		Region:        env.Region,
		Credentials:   credentials.StaticCredentialsProvider{Value: env.Credentials},
		ConfigSources: []any{env},
	}
	if env.BaseEndpoint != "" {
		cfg.BaseEndpoint = aws.String(env.BaseEndpoint)
	}
	return cfg, nil
}

// NewSealer is the one place a function's sealer is chosen. A function
// that seals or opens no key (newKMS nil: it links no KMS client) gets
// NoSealer whatever its environment says. A sealing function gets KMS
// (envelope encryption under the key KMS_KEY_ID names, built by newKMS) when
// cfg.KMSKeyID is set, as in AWS; else the AES-256-GCM sealer of the
// development SEALING_KEY, as in a local run. LoadConfig has already
// refused a sealing function without either.
func NewSealer(cfg Config, newKMS func(keyID string) (token.Sealer, error)) (token.Sealer, error) {
	if newKMS == nil {
		return NoSealer{}, nil
	}
	if cfg.KMSKeyID != "" {
		s, err := newKMS(cfg.KMSKeyID)
		if err != nil {
			return nil, fmt.Errorf("config: KMS_KEY_ID: %w", err)
		}
		return s, nil
	}
	return Sealer(cfg.SealingKey)
}

// Sealer returns the AES-256-GCM sealer of a base64 key, or NoSealer when
// the function has no key (it never seals nor opens one).
func Sealer(b64Key string) (token.Sealer, error) {
	if b64Key == "" {
		return NoSealer{}, nil
	}
	s, err := seal.NewAESGCMFromBase64(b64Key)
	if err != nil {
		return nil, fmt.Errorf("config: SEALING_KEY: %w", err)
	}
	return s, nil
}

// ErrNoSealingKey is NoSealer's answer.
var ErrNoSealingKey = errors.New("seal: this function has no SEALING_KEY")

// NoSealer is the sealer of a function that is given no sealing key (only
// the functions that write or reveal keys get one, per least privilege):
// it refuses every call.
type NoSealer struct{}

// Seal refuses.
func (NoSealer) Seal(context.Context, []byte, []byte) ([]byte, error) { return nil, ErrNoSealingKey }

// Open refuses.
func (NoSealer) Open(context.Context, []byte, []byte) ([]byte, error) { return nil, ErrNoSealingKey }

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

// StartInvoke runs the Lambda loop for a directly invoked function (Lambda
// Invoke, not HTTP), such as verify. It does not return.
func StartInvoke(h lambda.Handler) {
	lambda.Start(h)
}

// StartHTTP runs the Lambda loop for an HTTP API function: payload 2.0
// events through api.LambdaHandler (httpadapter V2, ProxyWithContext).
// It does not return.
func StartHTTP(h http.Handler) {
	lambda.Start(api.LambdaHandler(h))
}
