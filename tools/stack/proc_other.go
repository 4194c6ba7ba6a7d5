//go:build !linux

package stack

import "os/exec"

// setProcAttr does nothing: RIE runs on Linux only.
func setProcAttr(*exec.Cmd) {}

// killGroup kills the process.
func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
}
