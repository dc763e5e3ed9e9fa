// Package cli holds what tether's commands share.
package cli
