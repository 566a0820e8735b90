package testing

import (
	"testing"
)

func TestFakeLogindContract(t *testing.T) {
	RunLogindSuite(t, func(t *testing.T) LogindEnv {
		dir := t.TempDir()
		f := NewFakeLogind(dir)
		return LogindEnv{Dial: f.Dial, Server: f, ConfDir: dir}
	})
}
