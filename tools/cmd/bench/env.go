package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/llmgw/token-service/internal/ddbcount"
	"github.com/llmgw/token-service/internal/seal"
	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/token/dynamo"
	"github.com/llmgw/token-service/tools/ddblocal"
	"github.com/llmgw/token-service/tools/stack"
	"github.com/llmgw/token-service/tools/template"
)

// maxTokens is the per-user limit of the bench's stores and functions: the
// 1000-token run must still create.
const maxTokens = 100000

// env is what every measure shares: DynamoDB Local, the template loaded with
// a fresh table, a counted store over it.
type env struct {
	root       string
	ddb        *stack.DynamoDB
	ddbVersion string
	tmpl       *template.Stack
	table      string
	sealingKey string
	memoryMB   map[string]int // logical id -> MemorySize

	counter *ddbcount.Counter
	// The parts of one store, every request counted.
	tokens *dynamo.Tokens
	keys   *dynamo.Keys
	ledger *dynamo.Ledger
	access *dynamo.AccessTokens
	rules  token.Rules

	largestItem int
	skipped     []string
}

func setUp(ctx context.Context, o options, progress func(string, ...any)) (_ *env, err error) {
	// Paths stay relative, as cmd/localapi's: the stack resolves CodeUris
	// against the template's folder relative to the root.
	root := o.root
	e := &env{root: root, memoryMB: map[string]int{}}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if dir, err := ddblocal.FindDir(); err == nil {
		e.ddbVersion = strings.TrimPrefix(filepath.Base(dir), "dynamodb_local_")
	}
	if o.dynamoDB == "" {
		progress("starting DynamoDB Local")
	}
	if e.ddb, err = stack.OpenDynamoDB(ctx, stack.DynamoDBOptions{Endpoint: o.dynamoDB}); err != nil {
		return nil, err
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, err
	}
	e.sealingKey = base64.StdEncoding.EncodeToString(raw[:])
	e.table = fmt.Sprintf("bench-%d", time.Now().UnixNano())
	tmplPath := filepath.Join(root, o.template)
	e.tmpl, err = template.Load(tmplPath, template.Options{
		ParameterOverrides: map[string]string{"MaxTokensPerUser": fmt.Sprint(maxTokens)},
		TableNames:         map[string]string{"TokensTable": e.table},
	})
	if err != nil {
		return nil, err
	}
	for id, fn := range e.tmpl.Functions {
		e.memoryMB[id] = fn.MemorySize
	}
	if err := stack.EnsureTables(ctx, e.ddb.Client(), e.tmpl); err != nil {
		return nil, err
	}
	sealer, err := seal.NewAESGCMFromBase64(e.sealingKey)
	if err != nil {
		return nil, err
	}
	e.counter = &ddbcount.Counter{}
	core, err := dynamo.NewCore(dynamodb.New(e.ddb.Client().Options(), e.counter.CapacityOption), e.table)
	if err != nil {
		return nil, err
	}
	if e.tokens, err = dynamo.NewTokens(core, sealer, maxTokens); err != nil {
		return nil, err
	}
	if e.keys, err = dynamo.NewKeys(core, sealer); err != nil {
		return nil, err
	}
	e.ledger, e.access = dynamo.NewLedger(core), dynamo.NewAccessTokens(core)
	e.rules = token.Rules{AllowedGroups: []string{"default"}}
	return e, nil
}

func (e *env) close() {
	if e.ddb == nil {
		return
	}
	if !e.ddb.Started && e.table != "" {
		// A shared DynamoDB Local: leave no table behind.
		_, _ = e.ddb.Client().DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: &e.table})
	}
	_ = e.ddb.Close()
}

// Machine describes where the bench ran.
type Machine struct {
	CPU           string `json:"cpu"`
	Cores         int    `json:"cores"`
	MemoryGB      string `json:"memory"`
	GoVersion     string `json:"go_version"`
	OS            string `json:"os"`
	Java          string `json:"java"`
	DynamoDBLocal string `json:"dynamodb_local"`
}

func describeMachine(ctx context.Context, ddbVersion string) Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, DynamoDBLocal: ddbVersion}
	m.CPU = firstField("/proc/cpuinfo", "model name")
	if m.CPU == "" {
		m.CPU = firstField("/proc/cpuinfo", "CPU part") // arm without a model name
	}
	if kb := firstField("/proc/meminfo", "MemTotal"); kb != "" {
		var n float64
		fmt.Sscanf(kb, "%f", &n)
		m.MemoryGB = fmt.Sprintf("%.1f GiB", n/1024/1024)
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`) + ", " + m.OS
			}
		}
	}
	if b, err := exec.CommandContext(ctx, "uname", "-r").Output(); err == nil {
		m.OS += ", Linux " + strings.TrimSpace(string(b))
	}
	if b, err := exec.CommandContext(ctx, "java", "-version").CombinedOutput(); err == nil {
		m.Java = strings.SplitN(strings.TrimSpace(string(b)), "\n", 2)[0]
	}
	return m
}

func firstField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
