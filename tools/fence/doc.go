// Package fence checks, in its tests, that the Lambda functions link only
// product code: see fence_test.go.
package fence
