//go:build !linux

package testmongo

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
