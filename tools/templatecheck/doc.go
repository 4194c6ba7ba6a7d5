// Package templatecheck holds the tests that check template.yaml with
// AWS's own tools, as AWS would deploy it: `make lint-template` (SAM's JSON
// schema, the SAM translator and cfn-lint) must refuse broken copies of the
// template, and the translated CloudFormation (what CloudFormation runs
// after the SAM transform) must hold the routes, Lambda permissions, KMS key
// policy, logs, throttling, alarms and retention a production stack needs.
//
// The package has no code of its own; the tests run the SAM translator
// through the sam package and make(1) in the project root.
package templatecheck
