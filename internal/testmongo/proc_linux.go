package testmongo

import "syscall"

// sysProcAttr kills FerretDB when the test process dies, so a test binary that is interrupted
// (or that has no TestMain calling Main) leaves no server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
