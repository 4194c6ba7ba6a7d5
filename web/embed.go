// Package web holds the files of the Tokens console (web/console: plain
// HTML, CSS and JavaScript modules, no build step) embedded in the binary,
// and, under web/e2e, the console's browser tests. internal/console serves
// the files.
package web

import (
	"embed"
	"io/fs"
)

//go:embed console
var files embed.FS

// Console is the console's file tree: index.html at its root, every other
// file served under /assets/.
func Console() fs.FS {
	sub, err := fs.Sub(files, "console")
	if err != nil {
		// fs.Sub fails only for an invalid directory name, a constant here.
		return files
	}
	return sub
}
