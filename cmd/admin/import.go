package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/llmgw/token-service/internal/importer"
	"github.com/llmgw/token-service/internal/seal"
	"github.com/llmgw/token-service/internal/seal/kmsseal"
	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/token/dynamo"
)

// runImport is `admin import`: wiring of internal/importer over the table.
func runImport(ctx context.Context, fs *flag.FlagSet, args []string, getenv func(string) string, stdout io.Writer) error {
	from := fs.String("from", "", "the source: sqlite:<path>, mysql://user:pass@host:port/db or postgres://user:pass@host:port/db")
	accessTokens := fs.Bool("access-tokens", false, "also import the users' access tokens")
	prefix := fs.String("user-prefix", "", "prefix of every imported user id")
	groups := fs.String("allowed-groups", "default", "comma-separated groups a token may name")
	maxTokens := fs.Int("max-tokens-per-user", token.DefaultMaxTokensPerUser, "the stack's MaxTokensPerUser, for the report")
	sourceName := fs.String("source-name", "", "the source name each imported user records (default: -from without credentials)")
	parallel := fs.Int("parallel", 8, "users written at once")
	dryRun := fs.Bool("dry-run", false, "report without writing")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w\n%s", err, usage)
	}
	if *from == "" || fs.NArg() > 0 {
		return fmt.Errorf("import: -from <source> is required, and nothing else after the flags\n%s", usage)
	}
	src, err := importer.ParseSource(*from)
	if err != nil {
		return err
	}
	if err := importer.CheckUserPrefix(*prefix); err != nil {
		return err
	}
	name := src.Name
	if *sourceName != "" {
		name = *sourceName
	}
	core, cfg, err := openCore(ctx, getenv)
	if err != nil {
		return err
	}
	sealer, err := importSealer(getenv, func(keyID string) (token.Sealer, error) { return kmsseal.New(cfg, keyID) })
	if err != nil {
		return err
	}
	w, err := dynamo.NewImporter(core, sealer)
	if err != nil {
		return err
	}
	db, err := src.Open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	var allowed []string
	for _, g := range strings.Split(*groups, ",") {
		if g = strings.TrimSpace(g); g != "" {
			allowed = append(allowed, g)
		}
	}
	rep, err := importer.Run(ctx, db, w, importer.Options{
		SourceName: name, Dialect: src.Dialect, UserPrefix: *prefix, AllowedGroups: allowed,
		AccessTokens: *accessTokens, DryRun: *dryRun, MaxTokensPerUser: *maxTokens, Parallel: *parallel,
	})
	if rep != nil {
		rep.Print(stdout)
	}
	return err
}

// importSealer seals imported keys as the stack does: with its KMS key
// (KMS_KEY_ID, the stack's SealingKeyArn output; the caller needs
// kms:GenerateDataKey on it with the sealing encryption context), or, only
// against a local DynamoDB endpoint, with the development SEALING_KEY the
// local runner uses (make import passes .local/sealing-key).
func importSealer(getenv func(string) string, newKMS func(keyID string) (token.Sealer, error)) (token.Sealer, error) {
	if id := strings.TrimSpace(getenv("KMS_KEY_ID")); id != "" {
		return newKMS(id)
	}
	key := strings.TrimSpace(getenv("SEALING_KEY"))
	if key == "" {
		return nil, errors.New("import: KMS_KEY_ID (the stack's SealingKeyArn output) is required to seal the imported keys; locally SEALING_KEY (make import sets it)")
	}
	if !isLocal(getenv("AWS_ENDPOINT_URL_DYNAMODB")) {
		return nil, errors.New("import: SEALING_KEY is the local development key: against AWS set KMS_KEY_ID, the stack's SealingKeyArn output")
	}
	s, err := seal.NewAESGCMFromBase64(key)
	if err != nil {
		return nil, fmt.Errorf("import: SEALING_KEY: %w", err)
	}
	return s, nil
}
