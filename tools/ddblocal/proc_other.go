//go:build !linux

package ddblocal

import (
	"os"
	"os/exec"
)

func setProcAttr(*exec.Cmd) {}

// terminate interrupts p; where that is not supported (Windows) it fails and
// Stop kills p.
func terminate(p *os.Process) error { return p.Signal(os.Interrupt) }
