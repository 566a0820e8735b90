package cluster

import "testing"

func TestCRILogContent(t *testing.T) {
	log := "2026-11-26T11:09:52.1Z stdout F echo-1 10.0.0.1:5\n" +
		"2026-11-26T11:09:52.2Z stderr P part\n" +
		"2026-11-26T11:09:52.3Z stderr F ial line\n" +
		"2026-11-26T11:09:52.4Z stdout F \n"
	want := "echo-1 10.0.0.1:5\npartial line\n\n"
	if got := criLogContent(log); got != want {
		t.Errorf("criLogContent = %q, want %q", got, want)
	}
}
