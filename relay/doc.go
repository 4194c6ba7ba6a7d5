// Package relay is the Go client of the token service for an LLM gateway's
// relay: it invokes the service's verify function (Lambda Invoke with the
// relay's IAM role) to check a key and to charge it exactly once.
//
// The pattern for one upstream LLM call:
//
//  1. Hold an estimate before the call: [Client.Hold] checks the key (model,
//     client IP, status, rate limit) and charges the estimate if it fits.
//     It makes a request id for the call and keeps it in the [Hold].
//  2. Make the LLM call.
//  3. Settle the real cost after it: [Client.Settle] charges the difference
//     from the hold, or gives it back (checks skipped: the call ran). If the
//     call failed, [Client.Refund] gives the hold back instead.
//
// Every call is retried, with backoff, on timeouts, throttling and function
// errors, with the same event and request id: the service applies an
// event with a request id once, and answers its copies with the first
// answer (Answer.Replayed set). A hold never settled stays charged; its
// record lasts the stack's RequestRecordSeconds (7 days by default) after
// its last write.
//
// Refusals are errors of type *[Refusal]; test them with errors.Is
// against the [Code] constants (errors.Is(err, relay.InsufficientQuota)).
// A verify the service could not answer after every attempt is
// [ErrUnavailable].
package relay
