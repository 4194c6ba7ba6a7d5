// Package conformance holds the local runner's reading of template.yaml
// (package template: routes, the authorizer and the routes that use it,
// Lambda permissions, each function's environment and DynamoDB statements)
// against AWS's own SAM translator's output (package sam), which is what a
// deployment runs, for the project's template and for mutated copies of
// it; and runs the mutated copies on the local stack to show they fail
// there as they would in AWS. It has tests only.
package conformance
