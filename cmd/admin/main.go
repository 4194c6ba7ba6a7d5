// Command admin issues and revokes user access tokens, the bearer tokens
// with which users call the token API, and disables or enables users:
//
//	go run ./cmd/admin issue -user 42 [-role user]   # prints the token as the last line
//	go run ./cmd/admin revoke -token - < file-holding-the-token   # or -token at-...
//	go run ./cmd/admin disable-user -user 42   # from the next request: access tokens refused, keys "disabled"
//	go run ./cmd/admin enable-user -user 42    # undoes disable-user
//	go run ./cmd/admin import -from sqlite:one-api.db [-access-tokens] [-user-prefix p] [-allowed-groups default] [-dry-run]
//
// import copies a new-api or one-api deployment's tokens (and, with
// -access-tokens, its users' access tokens) into the table: see
// internal/importer and the README's migration guide. It seals the keys
// with the stack's KMS key (KMS_KEY_ID, the SealingKeyArn output) or, only
// against a local endpoint, with the development SEALING_KEY.
//
// The table is TABLE_NAME (default tokens); the DynamoDB endpoint is the AWS
// SDK's own AWS_ENDPOINT_URL_DYNAMODB. Against a local endpoint (localhost,
// 127.0.0.1) without credentials it uses DynamoDB Local's dummy ones and
// region us-east-1; against AWS the region and credentials are the
// environment's or the profile's (AWS_PROFILE, ~/.aws/config), as the AWS
// CLI finds them.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/auth"
	"github.com/llmgw/token-service/internal/token/dynamo"
)

const usage = `usage:
  admin issue -user <user id> [-role user|admin]   issue an access token (printed as the last line)
  admin revoke -token at-...|-                    revoke an access token (- reads it from stdin)
  admin disable-user -user <user id>              refuse the user's access tokens and keys from the next request
  admin enable-user -user <user id>               undo disable-user
  admin import -from <source> [flags]             copy a new-api or one-api deployment's tokens into the table
      <source>: sqlite:<path> | mysql://user:pass@host:port/db | postgres://user:pass@host:port/db
      -access-tokens        also import the users' access tokens (need AcceptLegacyAccessTokens=true)
      -user-prefix <p>      user ids become <p><source id> (keeps a second source's users apart)
      -allowed-groups <g>   comma-separated groups tokens may name (the stack's AllowedGroups; default "default")
      -max-tokens-per-user  the stack's MaxTokensPerUser, for the report (default 1000)
      -source-name <name>   what each imported user records as its source (default: the -from without credentials)
      -parallel <n>         users written at once (default 8)
      -dry-run              report without writing
environment: TABLE_NAME (default tokens), AWS_ENDPOINT_URL_DYNAMODB, AWS_REGION; for import KMS_KEY_ID, or SEALING_KEY locally`

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "admin:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet("admin "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	switch args[0] {
	case "issue":
		user := fs.String("user", "", "user id")
		role := fs.String("role", auth.RoleUser, "role: user or admin")
		if err := fs.Parse(args[1:]); err != nil {
			return fmt.Errorf("%w\n%s", err, usage)
		}
		if err := auth.CheckUserID(*user); err != nil {
			return err
		}
		if *role != auth.RoleUser && *role != auth.RoleAdmin {
			return fmt.Errorf("role must be %q or %q", auth.RoleUser, auth.RoleAdmin)
		}
		store, err := openStore(ctx, getenv)
		if err != nil {
			return err
		}
		tok, err := auth.NewAccessToken()
		if err != nil {
			return fmt.Errorf("issue: %w", err)
		}
		if err := store.PutAccessToken(ctx, auth.Hash(tok), auth.Principal{UserID: *user, Role: *role}); err != nil {
			return fmt.Errorf("issue: %w", err)
		}
		fmt.Fprintf(stdout, "Access token for user %s (role %s), shown once; send it as Authorization: Bearer <token>\n", *user, *role)
		fmt.Fprintln(stdout, tok)
		return nil
	case "revoke":
		tok := fs.String("token", "", "the access token to revoke (at-...)")
		if err := fs.Parse(args[1:]); err != nil {
			return fmt.Errorf("%w\n%s", err, usage)
		}
		if *tok == "-" {
			// From standard input, so it stays out of ps and shell history.
			line, err := bufio.NewReader(stdin).ReadString('\n')
			if err != nil && line == "" {
				return fmt.Errorf("revoke: read token from stdin: %w", err)
			}
			*tok = strings.TrimSpace(line)
		}
		if !auth.WellFormed(*tok) {
			return errors.New("revoke: -token is not an access token (at- + 43 characters)")
		}
		store, err := openStore(ctx, getenv)
		if err != nil {
			return err
		}
		if err := store.RevokeAccessToken(ctx, auth.Hash(*tok)); err != nil {
			return fmt.Errorf("revoke: %w", err)
		}
		fmt.Fprintln(stdout, "revoked")
		return nil
	case "import":
		return runImport(ctx, fs, args[1:], getenv, stdout)
	case "disable-user", "enable-user":
		user := fs.String("user", "", "user id")
		if err := fs.Parse(args[1:]); err != nil {
			return fmt.Errorf("%w\n%s", err, usage)
		}
		if err := auth.CheckUserID(*user); err != nil {
			return err
		}
		store, err := openStore(ctx, getenv)
		if err != nil {
			return err
		}
		disabled := args[0] == "disable-user"
		if err := store.SetUserDisabled(ctx, *user, disabled); err != nil {
			return fmt.Errorf("%s: %w", args[0], err)
		}
		if disabled {
			fmt.Fprintf(stdout, "user %s disabled: their access tokens and keys are refused from the next request\n", *user)
		} else {
			fmt.Fprintf(stdout, "user %s enabled\n", *user)
		}
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
}

// openStore connects to the table and checks that it exists, so that a
// missing local stack reads as such and not as an SDK error.
func openStore(ctx context.Context, getenv func(string) string) (*dynamo.AccessTokens, error) {
	core, _, err := openCore(ctx, getenv)
	if err != nil {
		return nil, err
	}
	return dynamo.NewAccessTokens(core), nil
}

// openCore connects to the table (checking that it exists) and returns the
// store's core and the AWS configuration used.
func openCore(ctx context.Context, getenv func(string) string) (*dynamo.Core, aws.Config, error) {
	table := getenv("TABLE_NAME")
	if table == "" {
		table = "tokens"
	}
	endpoint := getenv("AWS_ENDPOINT_URL_DYNAMODB")
	cfg, err := awsConfig(ctx, getenv, endpoint)
	if err != nil {
		return nil, aws.Config{}, err
	}
	client := dynamodb.NewFromConfig(cfg)
	where := endpoint
	if where == "" {
		where = "the default AWS endpoint of " + cfg.Region
	}
	if _, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)}); err != nil {
		var nf *types.ResourceNotFoundException
		if errors.As(err, &nf) {
			return nil, aws.Config{}, fmt.Errorf("table %s not found at %s: start the local stack first (make start-api)", table, where)
		}
		if isLocal(endpoint) {
			return nil, aws.Config{}, fmt.Errorf("table %s not found at %s (DynamoDB Local does not answer): start the local stack first (make start-api)", table, where)
		}
		return nil, aws.Config{}, fmt.Errorf("describe table %s at %s: %w", table, where, err)
	}
	core, err := dynamo.NewCore(client, table)
	if err != nil {
		return nil, aws.Config{}, err
	}
	return core, cfg, nil
}

// awsConfig is the SDK configuration: the environment and the shared
// profile, as the AWS CLI reads them. Only against a local endpoint does it
// fill in what DynamoDB Local needs (region us-east-1, dummy credentials)
// when nothing is set; against AWS a missing region is an error, never a
// silent us-east-1 that would hide the profile's region.
func awsConfig(ctx context.Context, getenv func(string) string, endpoint string) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	if isLocal(endpoint) {
		if getenv("AWS_REGION") == "" && getenv("AWS_DEFAULT_REGION") == "" && getenv("AWS_PROFILE") == "" {
			opts = append(opts, config.WithRegion("us-east-1"))
		}
		if getenv("AWS_ACCESS_KEY_ID") == "" && getenv("AWS_PROFILE") == "" {
			// DynamoDB Local accepts any key without '-' or '_'.
			opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("local", "local", "")))
		}
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load aws config: %w", err)
	}
	if cfg.Region == "" {
		return aws.Config{}, errors.New("no AWS region: set AWS_REGION, or a region in the profile (aws configure)")
	}
	return cfg, nil
}

// isLocal reports whether endpoint points at this machine.
func isLocal(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	switch u.Hostname() {
	case "localhost", "127.0.0.1", "::1":
		return true
	}
	return false
}
