//go:build race

package ws_test

// raceEnabled: the race detector keeps shadow memory, so RSS figures mean little.
const raceEnabled = true
