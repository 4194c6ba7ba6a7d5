// Command importbench measures cmd/admin import: it writes a new-api
// SQLite database of -tokens tokens over -users users, imports it into a
// fresh table of DynamoDB Local (one it starts, or DYNAMODB_ENDPOINT's),
// then imports it again, counting the DynamoDB requests of each run, and
// writes the figures into the "Import" section of <out>/RESULTS.md
// (make bench-import).
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/ddbcount"
	"github.com/llmgw/token-service/internal/importer"
	"github.com/llmgw/token-service/internal/importer/importtest"
	"github.com/llmgw/token-service/internal/seal"
	"github.com/llmgw/token-service/internal/token/dynamo"
	"github.com/llmgw/token-service/tools/ddblocal"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "importbench:", err)
		os.Exit(1)
	}
}

func run() error {
	tokens := flag.Int("tokens", 100_000, "tokens in the source")
	users := flag.Int("users", 1_000, "users the tokens are spread over")
	parallel := flag.Int("parallel", 8, "users written at once (the import's -parallel)")
	out := flag.String("out", "bench", "folder of RESULTS.md")
	flag.Parse()
	if *tokens < 1 || *users < 1 {
		return errors.New("-tokens and -users must be positive")
	}
	ctx := context.Background()

	endpoint := os.Getenv("DYNAMODB_ENDPOINT")
	if endpoint == "" {
		inst, err := ddblocal.Start(ctx, ddblocal.Options{})
		if err != nil {
			return err
		}
		defer inst.Stop()
		endpoint = inst.Endpoint()
	}

	dir, err := os.MkdirTemp("", "importbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "new-api.db")
	fmt.Printf("writing %d tokens of %d users to %s\n", *tokens, *users, path)
	if err := writeSource(ctx, path, *tokens, *users); err != nil {
		return err
	}

	client := ddblocal.NewClient(endpoint)
	table := fmt.Sprintf("importbench-%d", time.Now().UnixNano())
	if err := createTable(ctx, client, table); err != nil {
		return err
	}
	defer client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})

	key := make([]byte, 32)
	sealer, err := seal.NewAESGCM(key)
	if err != nil {
		return err
	}
	src, err := importer.ParseSource("sqlite:" + path)
	if err != nil {
		return err
	}
	db, err := src.Open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()

	var runs []result
	for _, name := range []string{"first import", "second import (nothing new)"} {
		var counter ddbcount.Counter
		core, err := dynamo.NewCore(dynamodb.New(client.Options(), counter.Option), table)
		if err != nil {
			return err
		}
		w, err := dynamo.NewImporter(core, sealer)
		if err != nil {
			return err
		}
		start := time.Now()
		rep, err := importer.Run(ctx, db, w, importer.Options{SourceName: src.Name, Dialect: src.Dialect,
			AllowedGroups: []string{"default"}, Parallel: *parallel})
		if err != nil {
			return err
		}
		r := result{name: name, elapsed: time.Since(start), counts: counter.Counts(), total: counter.Total(),
			imported: rep.Imported, already: rep.Already}
		fmt.Printf("%s: %s, %d imported, %d already, %d requests %v\n", name, r.elapsed.Round(time.Millisecond), r.imported, r.already, r.total, r.counts)
		runs = append(runs, r)
	}
	return writeSection(filepath.Join(*out, "RESULTS.md"), *tokens, *users, *parallel, runs)
}

type result struct {
	name              string
	elapsed           time.Duration
	counts            map[string]int
	total             int
	imported, already int
}

// writeSource writes a new-api database of n tokens spread evenly over
// users, ids global as the source's autoincrement makes them.
func writeSource(ctx context.Context, path string, n, users int) error {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, stmt := range importtest.DDL(importtest.NewAPI, importtest.SQLite) {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	us := make([]importtest.User, users)
	for i := range us {
		us[i] = importtest.User{ID: int64(i + 1), Status: 1}
	}
	if err := importtest.InsertUsers(ctx, db, importtest.NewAPI, importtest.SQLite, us); err != nil {
		return err
	}
	never := int64(-1)
	models, ips, group := "gpt-4,gpt-4o-mini", "10.0.0.0/8", "default"
	batch := make([]importtest.Token, 0, 5000)
	for id := 1; id <= n; id++ {
		batch = append(batch, importtest.Token{ID: int64(id), UserID: int64((id-1)*users/n + 1), Label: fmt.Sprintf("bench-%d", id),
			Status: 1, Name: fmt.Sprintf("token %d", id), ExpiredTime: &never, RemainQuota: 500_000, UsedQuota: 1_000,
			ModelsOn: true, Models: &models, IPs: &ips, Group: &group, CreatedTime: 1_700_000_000})
		if len(batch) == cap(batch) || id == n {
			if err := importtest.InsertTokens(ctx, db, importtest.NewAPI, importtest.SQLite, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}

func createTable(ctx context.Context, client *dynamodb.Client, table string) error {
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String(table),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
		},
	})
	return err
}

// section is RESULTS.md's import section, between its heading and the next.
var section = regexp.MustCompile(`(?s)\n## Import \(cmd/admin import\)\n.*?(\n## |\z)`)

// writeSection puts the import's figures into RESULTS.md, replacing an
// earlier import section.
func writeSection(path string, tokens, users, parallel int, runs []result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Import (cmd/admin import)\n\n")
	fmt.Fprintf(&b, "Written by `make bench-import` (tools/cmd/importbench) on %s: %d tokens of %d users (new-api schema, SQLite) "+
		"into DynamoDB Local on this machine (%d CPUs), %d users written at once. Requests counted by an SDK middleware.\n\n",
		time.Now().UTC().Format(time.RFC3339), tokens, users, runtime.NumCPU(), parallel)
	fmt.Fprintf(&b, "| run | time | tokens/s | imported | already | DynamoDB requests |\n|---|---|---|---|---|---|\n")
	for _, r := range runs {
		ops := make([]string, 0, len(r.counts))
		for op, n := range r.counts {
			ops = append(ops, fmt.Sprintf("%d %s", n, op))
		}
		sort.Strings(ops)
		rate := float64(tokens) / r.elapsed.Seconds()
		fmt.Fprintf(&b, "| %s | %s | %.0f | %d | %d | %d (%s) |\n", r.name, r.elapsed.Round(10*time.Millisecond), rate,
			r.imported, r.already, r.total, strings.Join(ops, ", "))
	}
	fmt.Fprintf(&b, "\nPer user: one strongly consistent BatchGetItem of its meta item, import record and its tokens' key lookups "+
		"(100 keys a request), then one TransactWriteItems per 48 tokens (each token, its lookup item, the meta item, the "+
		"import record); a rerun reads only. In AWS each transaction's item costs 2 write units, so 100,000 tokens cost "+
		"about 400,000 write units (tokens and lookups) plus the meta and record updates.\n")
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	text := string(old)
	if loc := section.FindStringSubmatchIndex(text); loc != nil {
		// loc[2] is where the next heading starts (or the end).
		text = text[:loc[0]] + b.String() + text[loc[2]:]
	} else {
		text = strings.TrimRight(text, "\n") + "\n" + b.String()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(text), 0o644)
}
