package stack_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmgw/token-service/tools/stack"
	"github.com/llmgw/token-service/tools/template"
)

// answeringInvoker stands in for the functions: it answers every invoke
// with 200 "served" after delay.
type answeringInvoker struct{ delay time.Duration }

func (a answeringInvoker) Invoke(ctx context.Context, _ string, _ []byte) (*stack.Invocation, error) {
	select {
	case <-time.After(a.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &stack.Invocation{Payload: []byte(`{"statusCode":200,"body":"served"}`)}, nil
}

// serveWithTimeouts serves the test template's API on a loopback port with
// the runner's server and read timeout, functions answered by inv.
func serveWithTimeouts(t *testing.T, timeout time.Duration, inv stack.Invoker) string {
	t.Helper()
	params, err := stack.LocalParameters("testdata/template.yaml", map[string]string{"Secret": "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := template.Load("testdata/template.yaml", template.Options{
		ParameterOverrides: params,
		TableNames:         map[string]string{"Table": "items"},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := stack.NewHTTPServer(stack.NewAPI(tmpl, inv, slog.New(slog.NewTextHandler(io.Discard, nil))),
		stack.ServerTimeouts{ReadHeader: timeout, Read: timeout})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// TestServerClosesStalledConnections: connections that send their headers
// or part of a body and then stall are closed once the read timeout has
// passed (a partial body is answered 408 first), while other requests are
// served meanwhile; a function slower than the read timeout is not cut.
func TestServerClosesStalledConnections(t *testing.T) {
	const timeout = 500 * time.Millisecond
	addr := serveWithTimeouts(t, timeout, answeringInvoker{})

	stalls := []struct {
		name     string
		sent     string
		want408  bool
		parallel int
	}{
		{"part of a body", "POST /items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Length: 1000\r\n\r\n{\"name\":", true, 20},
		{"headers and no body", "POST /items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Length: 10\r\n\r\n", true, 5},
		{"part of the headers", "GET /public HTTP/1.1\r\nHost: x\r\nX-Slow: ", false, 5},
	}
	start := time.Now()
	type result struct {
		name     string
		answer   string
		closedAt time.Duration
		err      error
	}
	results := make(chan result, 30)
	var wg sync.WaitGroup
	for _, st := range stalls {
		for range st.parallel {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = conn.Close() })
			if _, err := io.WriteString(conn, st.sent); err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Wait well past the timeout: a connection still open then
				// fails with a read deadline error.
				_ = conn.SetReadDeadline(start.Add(timeout + 5*time.Second))
				b, err := io.ReadAll(conn)
				var ne net.Error
				if errors.As(err, &ne) && !ne.Timeout() || errors.Is(err, net.ErrClosed) {
					err = nil // reset by the server: closed too
				}
				results <- result{name: st.name, answer: string(b), closedAt: time.Since(start), err: err}
			}()
		}
	}

	// While they stall, a request is served, well before the timeout.
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/public")
	if err != nil {
		t.Fatalf("a request during the stall: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if served := time.Since(start); resp.StatusCode != 200 || string(body) != "served" || served >= timeout {
		t.Errorf("during the stall: %d %q after %v, want 200 \"served\" before %v", resp.StatusCode, body, served, timeout)
	}

	wg.Wait()
	close(results)
	for r := range results {
		switch {
		case r.err != nil:
			t.Errorf("%s: still open after %v: %v", r.name, r.closedAt, r.err)
		case r.closedAt < timeout*9/10:
			t.Errorf("%s: closed after %v, before the timeout %v", r.name, r.closedAt, timeout)
		}
		want408 := false
		for _, st := range stalls {
			if st.name == r.name {
				want408 = st.want408
			}
		}
		if got := strings.HasPrefix(r.answer, "HTTP/1.1 408 "); got != want408 {
			t.Errorf("%s: answered %q, want a 408: %v", r.name, firstLine(r.answer), want408)
		}
	}
}

// TestServerWaitsForSlowFunctions: the read timeout bounds reading the
// request, not the function's work.
func TestServerWaitsForSlowFunctions(t *testing.T) {
	const timeout = 300 * time.Millisecond
	addr := serveWithTimeouts(t, timeout, answeringInvoker{delay: 3 * timeout})
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/public")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "served" {
		t.Errorf("a function slower than the read timeout: %d %q, want 200 \"served\"", resp.StatusCode, body)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}
