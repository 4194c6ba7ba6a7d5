package stack

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrTooManyRequests is returned by Pool.Invoke when every instance stayed
// busy for the function's whole timeout.
var ErrTooManyRequests = errors.New("too many requests")

// ErrClosed is returned by Pool.Invoke after Close.
var ErrClosed = errors.New("pool closed")

// FunctionError is an invocation that failed inside the function: a returned
// error, a crash, or a timeout. API Gateway answers all three with 500.
type FunctionError struct {
	Function string
	// Kind is "error", "crash" or "timeout".
	Kind string
	// Detail is RIE's answer (an error type and message; never the event).
	Detail string
	// Payload is the function's error document as the runtime reported it
	// ({"errorMessage": ..., "errorType": ...}) when Kind is "error".
	Payload []byte
}

// Error says which function failed how.
func (e *FunctionError) Error() string {
	return fmt.Sprintf("function %s: %s: %s", e.Function, e.Kind, e.Detail)
}

// Invocation is the result of one successful invoke.
type Invocation struct {
	// Payload is what the function returned.
	Payload []byte
	// Duration is the invoke's wall time as the runner saw it.
	Duration time.Duration
	// InitDuration is RIE's INIT REPORT duration on a cold start, else 0.
	InitDuration time.Duration
	// Cold reports a cold start (a new instance initialised for this invoke).
	Cold bool
}

// PoolConfig describes one function's instances.
type PoolConfig struct {
	// Name is the function's logical id (log prefix, AWS_LAMBDA_FUNCTION_NAME).
	Name string
	// RIE is the aws-lambda-rie binary; Bootstrap the function's binary,
	// run with its folder as working directory.
	RIE, Bootstrap string
	// Env is the whole environment of the RIE process, which passes it on.
	Env []string
	// Timeout is the function's timeout: RIE enforces it, and requests wait
	// at most that long for a free instance.
	Timeout time.Duration
	// MaxInstances caps concurrent instances (default 10).
	MaxInstances int
	// Output receives the instances' log lines, prefixed with Name.
	Output io.Writer
	// Verbose shows RIE's own informational lines too.
	Verbose bool
}

// Pool runs a function under the Lambda Runtime Interface Emulator, one RIE
// process per instance and one invocation at a time per instance (RIE
// answers a concurrent invoke with 400). It starts instances on demand up to
// MaxInstances; a failed instance is killed and later requests get a fresh one.
type Pool struct {
	cfg    PoolConfig
	sem    chan struct{} // one slot per invocation in flight
	closed chan struct{}
	once   sync.Once
	client *http.Client

	mu   sync.Mutex
	idle []*instance
	all  map[*instance]bool
}

// NewPool returns a pool that starts no process until its first Invoke.
func NewPool(cfg PoolConfig) *Pool {
	if cfg.MaxInstances <= 0 {
		cfg.MaxInstances = 10
	}
	if cfg.Output == nil {
		cfg.Output = io.Discard
	}
	return &Pool{
		cfg:    cfg,
		sem:    make(chan struct{}, cfg.MaxInstances),
		closed: make(chan struct{}),
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		all:    map[*instance]bool{},
	}
}

// Name is the function's logical id.
func (p *Pool) Name() string { return p.cfg.Name }

// Instances reports how many RIE processes are running.
func (p *Pool) Instances() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.all)
}

// Invoke runs one event through an instance. It waits up to the function's
// timeout for a free instance (ErrTooManyRequests after that). A
// *FunctionError reports a function error, crash or timeout; the instance
// is then killed.
func (p *Pool) Invoke(ctx context.Context, payload []byte) (*Invocation, error) {
	wait := time.NewTimer(p.cfg.Timeout)
	defer wait.Stop()
	select {
	case p.sem <- struct{}{}:
	case <-wait.C:
		return nil, ErrTooManyRequests
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.closed:
		return nil, ErrClosed
	}
	defer func() { <-p.sem }()

	inst, err := p.take(ctx)
	if err != nil {
		return nil, err
	}
	// An instance busy with an invoke cannot be reused before it answers, so
	// a caller that goes away does not cut the invoke short.
	inv, err := inst.invoke(context.WithoutCancel(ctx), payload)
	if err != nil {
		p.discard(inst)
		return nil, err
	}
	p.put(inst)
	return inv, nil
}

// take returns an idle live instance or starts one.
func (p *Pool) take(ctx context.Context) (*instance, error) {
	p.mu.Lock()
	for len(p.idle) > 0 {
		inst := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if inst.alive() {
			p.mu.Unlock()
			return inst, nil
		}
		delete(p.all, inst)
		go inst.kill()
	}
	p.mu.Unlock()

	inst, err := p.start(ctx)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.closed:
		go inst.kill()
		return nil, ErrClosed
	default:
	}
	p.all[inst] = true
	return inst, nil
}

func (p *Pool) put(inst *instance) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.closed:
		go inst.kill()
		return
	default:
	}
	p.idle = append(p.idle, inst)
}

func (p *Pool) discard(inst *instance) {
	p.mu.Lock()
	delete(p.all, inst)
	p.mu.Unlock()
	inst.kill()
}

// Close kills every instance and makes later invokes fail with ErrClosed.
func (p *Pool) Close() {
	p.once.Do(func() { close(p.closed) })
	p.mu.Lock()
	all := p.all
	p.all = map[*instance]bool{}
	p.idle = nil
	p.mu.Unlock()
	var wg sync.WaitGroup
	for inst := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst.kill()
		}()
	}
	wg.Wait()
}

// startAttempts bounds retries when a free port was taken before RIE bound it.
const startAttempts = 3

func (p *Pool) start(ctx context.Context) (*instance, error) {
	var err error
	for range startAttempts {
		var inst *instance
		inst, err = p.startOnce(ctx)
		if err == nil {
			return inst, nil
		}
	}
	return nil, fmt.Errorf("start %s under RIE: %w", p.cfg.Name, err)
}

func (p *Pool) startOnce(ctx context.Context) (*instance, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			releasePorts(ports)
		}
	}()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	runtimeAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
	logLevel := "info" // INIT REPORT is an info line
	if p.cfg.Verbose {
		logLevel = "debug"
	}
	cmd := exec.Command(p.cfg.RIE,
		"--log-level", logLevel,
		"--runtime-interface-emulator-address", addr,
		"--runtime-api-address", runtimeAddr,
		p.cfg.Bootstrap)
	cmd.Dir = filepath.Dir(p.cfg.Bootstrap)
	cmd.Env = p.cfg.Env
	setProcAttr(cmd)
	// One pipe for stdout and stderr keeps RIE's lines in the order written,
	// so INIT REPORT is read before the REPORT that ends the invoke.
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	w.Close()
	started = true
	inst := &instance{
		pool:    p,
		cmd:     cmd,
		ports:   ports,
		url:     "http://" + addr + "/2015-03-31/functions/function/invocations",
		exited:  make(chan struct{}),
		reports: make(chan struct{}, 1),
		outDone: make(chan struct{}),
	}
	go inst.readOutput(r)
	go func() {
		_ = cmd.Wait()
		releasePorts(ports)
		close(inst.exited)
	}()
	// RIE serves invokes as soon as its own address listens, but binds the
	// runtime API in a goroutine of its own: an invoke before that would
	// start a runtime that finds nothing to connect to. It panics when the
	// runtime API port was taken since freePorts saw it free.
	for _, a := range []string{addr, runtimeAddr} {
		if err := inst.waitListening(ctx, a); err != nil {
			inst.kill()
			return nil, err
		}
	}
	if !inst.alive() {
		inst.kill()
		return nil, errors.New("RIE exited after it started listening")
	}
	return inst, nil
}

// instance is one RIE process and, once invoked, its bootstrap child.
type instance struct {
	pool    *Pool
	cmd     *exec.Cmd
	ports   []int // its emulator and runtime API ports
	url     string
	exited  chan struct{} // closed when the RIE process has exited
	outDone chan struct{} // closed when its output is drained
	dead    atomic.Bool   // the runtime process exited between invokes
	reports chan struct{} // a REPORT line was read
	initMs  atomic.Uint64 // float64 bits of the last INIT REPORT durationMs
	inited  bool          // owned by the holder of the instance
	kills   sync.Once
}

func (i *instance) alive() bool {
	if i.dead.Load() {
		return false
	}
	select {
	case <-i.exited:
		return false
	default:
		return true
	}
}

func (i *instance) waitListening(ctx context.Context, addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-i.exited:
			return fmt.Errorf("RIE exited before listening on %s", addr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("RIE did not listen on %s: %w", addr, err)
		}
	}
}

// kill ends the RIE process group (RIE and the function) and waits for it.
func (i *instance) kill() {
	i.kills.Do(func() {
		killGroup(i.cmd)
		select {
		case <-i.exited:
		case <-time.After(5 * time.Second):
		}
		select {
		case <-i.outDone:
		case <-time.After(time.Second):
		}
	})
}

// reportWait bounds the wait for RIE's REPORT line after an answer (RIE
// prints it before it answers, so it is normally already in the pipe).
const reportWait = 250 * time.Millisecond

func (i *instance) invoke(ctx context.Context, payload []byte) (*Invocation, error) {
	fn := i.pool.cfg.Name
	select {
	case <-i.reports:
	default:
	}
	// RIE enforces the timeout (for the init and for the invoke); this bound
	// only guards against an emulator that stops answering.
	ctx, cancel := context.WithTimeout(ctx, 2*i.pool.cfg.Timeout+5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, i.url, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := i.pool.client.Do(req)
	if err != nil {
		return nil, &FunctionError{Function: fn, Kind: "crash", Detail: "emulator: " + err.Error()}
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	elapsed := time.Since(start)
	if err != nil {
		return nil, &FunctionError{Function: fn, Kind: "crash", Detail: "emulator: " + err.Error()}
	}
	cold := !i.inited
	i.inited = true
	switch {
	case resp.StatusCode == http.StatusOK && bytes.HasPrefix(body, []byte("Task timed out after")):
		return nil, &FunctionError{Function: fn, Kind: "timeout", Detail: string(body)}
	case resp.StatusCode != http.StatusOK:
		return nil, &FunctionError{Function: fn, Kind: "crash", Detail: fmt.Sprintf("emulator status %d: %s", resp.StatusCode, errorSummary(body))}
	case isFunctionError(body):
		return nil, &FunctionError{Function: fn, Kind: "error", Detail: errorSummary(body), Payload: body}
	}
	inv := &Invocation{Payload: body, Duration: elapsed, Cold: cold}
	if cold {
		select {
		case <-i.reports:
		case <-time.After(reportWait):
		}
		inv.InitDuration = time.Duration(math.Float64frombits(i.initMs.Load()) * float64(time.Millisecond))
	}
	return inv, nil
}

// isFunctionError reports RIE's rendering of a function error:
// {"errorMessage": ..., "errorType": ...} (RIE drops the
// X-Amz-Function-Error header, so the body is all there is).
func isFunctionError(body []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return false
	}
	_, typ := m["errorType"]
	_, msg := m["errorMessage"]
	_, status := m["statusCode"]
	return typ && msg && !status
}

// errorSummary keeps the errorType and errorMessage of an error body.
func errorSummary(body []byte) string {
	var e struct {
		Type    string `json:"errorType"`
		Message string `json:"errorMessage"`
	}
	if json.Unmarshal(body, &e) == nil && e.Type != "" {
		return e.Type + ": " + e.Message
	}
	if len(body) > 200 {
		body = body[:200]
	}
	return string(body)
}

// RIE's own log lines look like
// "25 Nov 2026 11:07:11,865 [INFO] (rapid) INIT REPORT(durationMs: 6.053000)".
const (
	initReportPrefix = "INIT REPORT(durationMs: "
	reportPrefix     = "REPORT RequestId: "
)

func (i *instance) readOutput(r io.ReadCloser) {
	defer close(i.outDone)
	defer r.Close()
	out := i.pool.cfg.Output
	prefix := "[" + i.pool.cfg.Name + "] "
	br := bufio.NewReaderSize(r, 64*1024)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			line = strings.TrimRight(line, "\r\n")
			if i.observe(line) {
				writeLine(out, prefix+line)
			}
		}
		if err != nil {
			return
		}
	}
}

// observe takes what the runner needs from a line of RIE's output and
// reports whether to show it.
func (i *instance) observe(line string) (show bool) {
	verbose := i.pool.cfg.Verbose
	if _, rest, ok := strings.Cut(line, initReportPrefix); ok {
		if ms, err := strconv.ParseFloat(strings.TrimSuffix(rest, ")"), 64); err == nil {
			i.initMs.Store(math.Float64bits(ms))
		}
		return verbose
	}
	if strings.HasPrefix(line, reportPrefix) {
		select {
		case i.reports <- struct{}{}:
		default:
		}
		return verbose
	}
	if strings.Contains(line, "(rapid) Process runtime-") && strings.Contains(line, " exited") {
		// The runtime died; RIE would answer the next invoke with an error.
		i.dead.Store(true)
		return true
	}
	if strings.HasPrefix(line, "START RequestId: ") || strings.HasPrefix(line, "END RequestId: ") {
		return verbose
	}
	if strings.Contains(line, "] (rapid) ") {
		return verbose || strings.Contains(line, "[WARN") || strings.Contains(line, "[ERROR]")
	}
	return true
}

var outputMu sync.Mutex

// writeLine writes one whole line so lines of concurrent instances never mix.
func writeLine(w io.Writer, line string) {
	outputMu.Lock()
	defer outputMu.Unlock()
	_, _ = io.WriteString(w, line+"\n")
}

// portsInUse are the ports handed to instances of this process that have
// not exited: the kernel may offer one again between freePorts closing its
// listener and RIE binding it, and two instances must never share one.
var (
	portsMu    sync.Mutex
	portsInUse = map[int]bool{}
)

// freePorts asks the kernel for n distinct free loopback ports that no
// instance of this process holds, and reserves them until releasePorts.
func freePorts(n int) ([]int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries > 100 {
			return nil, errors.New("find a free port: every port offered is in use")
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close()
		port := l.Addr().(*net.TCPAddr).Port
		if portsInUse[port] {
			continue
		}
		portsInUse[port] = true
		ports = append(ports, port)
	}
	return ports, nil
}

// releasePorts returns ports reserved by freePorts.
func releasePorts(ports []int) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for _, p := range ports {
		delete(portsInUse, p)
	}
}
