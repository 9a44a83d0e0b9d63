//go:build !unix

package testmongo

// lockFile does not lock: concurrent builds then both build, and the last rename wins (each
// builds into its own temporary file, so the binary in the cache is whole either way).
func lockFile(string) (unlock func(), err error) { return func() {}, nil }
