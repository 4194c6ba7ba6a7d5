// Package app is the composition root of the functions that read the
// table: it reads their configuration (package config), sets up logging,
// and builds the AWS configuration, the sealer and the DynamoDB store once
// per container. Each functions/<name>/main.go is wiring over it: it hands
// the part of the store it needs to its handler and starts the Lambda loop
// (api.Start for an HTTP function, lambda.Start otherwise).
package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/llmgw/token-service/internal/config"
	"github.com/llmgw/token-service/internal/seal"
	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/token/dynamo"
)

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

// App is what a function's handler is built from: the configuration and
// the parts of one DynamoDB store, each serving one role.
type App struct {
	Config config.Config
	Rules  token.Rules
	Clock  func() time.Time

	Tokens       *dynamo.Tokens       // the HTTP handlers' token.Store
	Keys         *dynamo.Keys         // reveal and rotate (token.KeyStore)
	Ledger       *dynamo.Ledger       // verify's token.Ledger
	AccessTokens *dynamo.AccessTokens // the authorizer's auth.Store
}

// New reads the environment, sets the default JSON logger and builds the
// store. Call it once, in main, outside the handler.
func New(opts Options) (*App, error) {
	cfg, err := config.Load(os.Getenv, opts.KMS != nil)
	if err != nil {
		return nil, err
	}
	config.SetLogger(cfg.LogLevel)
	awsCfg, err := AWSConfig()
	if err != nil {
		return nil, err
	}
	var newKMS func(keyID string) (token.Sealer, error)
	if opts.KMS != nil {
		newKMS = func(keyID string) (token.Sealer, error) { return opts.KMS(awsCfg, keyID) }
	}
	sealer, err := NewSealer(cfg, newKMS)
	if err != nil {
		return nil, err
	}
	core, err := dynamo.NewCore(dynamodb.NewFromConfig(awsCfg), cfg.TableName)
	if err != nil {
		return nil, fmt.Errorf("build store: %w", err)
	}
	tokens, err := dynamo.NewTokens(core, sealer, cfg.MaxTokensPerUser)
	if err != nil {
		return nil, fmt.Errorf("build store: %w", err)
	}
	keys, err := dynamo.NewKeys(core, sealer)
	if err != nil {
		return nil, fmt.Errorf("build store: %w", err)
	}
	return &App{
		Config:       cfg,
		Rules:        cfg.Rules(),
		Clock:        time.Now,
		Tokens:       tokens,
		Keys:         keys,
		Ledger:       dynamo.NewLedger(core),
		AccessTokens: dynamo.NewAccessTokens(core),
	}, nil
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
	env, err := awsconfig.NewEnvConfig()
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
// development SEALING_KEY, as in a local run. config.Load has already
// refused a sealing function without either.
func NewSealer(cfg config.Config, newKMS func(keyID string) (token.Sealer, error)) (token.Sealer, error) {
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
