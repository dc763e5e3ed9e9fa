//go:build race

package pebblestore

// raceEnabled slows tests that do many operations down to a size the race
// detector runs in reasonable time.
const raceEnabled = true
