package stack

import (
	"net/http"
	"time"
)

// ServerTimeouts bound how long the runner's HTTP servers (the API on
// :3000, the Lambda Invoke API on :3001) wait on a client, so that clients
// that open connections and stall cannot hold them: API Gateway does not
// wait on a slow client forever either.
type ServerTimeouts struct {
	// ReadHeader is the time a client has to send a request's headers.
	ReadHeader time.Duration
	// Read is the time a client has to send a whole request, body
	// included, from its first byte. A request whose body is not all there
	// by then is answered 408 and its connection closed. Go's server lifts
	// the deadline once the body is read, so a slow function is not cut.
	Read time.Duration
	// Idle is how long a kept-alive connection waits for its next request.
	Idle time.Duration
}

// DefaultServerTimeouts are the runner's: 10 s for the headers and for
// the whole request (a 10 MB body on a local link takes milliseconds), a
// minute for an idle connection.
var DefaultServerTimeouts = ServerTimeouts{ReadHeader: 10 * time.Second, Read: 10 * time.Second, Idle: time.Minute}

// NewHTTPServer returns the server of h with the timeouts t; a zero field
// takes DefaultServerTimeouts' value.
func NewHTTPServer(h http.Handler, t ServerTimeouts) *http.Server {
	d := DefaultServerTimeouts
	if t.ReadHeader <= 0 {
		t.ReadHeader = d.ReadHeader
	}
	if t.Read <= 0 {
		t.Read = d.Read
	}
	if t.Idle <= 0 {
		t.Idle = d.Idle
	}
	return &http.Server{Handler: h, ReadHeaderTimeout: min(t.ReadHeader, t.Read), ReadTimeout: t.Read, IdleTimeout: t.Idle}
}
