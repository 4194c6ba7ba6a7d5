// Package e2e runs the Tokens console's browser tests (console.test.js,
// node --test with playwright-core driving Debian's chromium) against the
// whole stack started in-process: see TestConsoleBrowser.
package e2e
