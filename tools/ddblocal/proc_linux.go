package ddblocal

import (
	"os"
	"os/exec"
	"syscall"
)

// setProcAttr has the kernel kill the jar when this process dies without
// calling Stop (a test binary killed on timeout, a SIGKILL), so no orphaned
// Java keeps a port.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
