// Package relaytest is the end-to-end suite of the relay client (package
// relay, what a gateway imports): it has no code of its own. Its tests run
// the verify function's real binary under the local runner, reach it
// through the Lambda Invoke API with the relay client as a gateway would,
// and put a failing network between the two (a test double that drops,
// throttles or withholds attempts) to show that every charge happens once.
package relaytest
