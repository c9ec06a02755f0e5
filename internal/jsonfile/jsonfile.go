// Package jsonfile keeps small records as JSON files, each written whole
// (through a rename): a reader, or a process that crashed half way, sees
// the old file or the new one, never a part.
package jsonfile

import (
	"encoding/json"
	"os"
)

// Write writes v to path whole.
func Write(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Read reads what Write wrote; os.ErrNotExist when there is nothing.
func Read[T any](path string) (T, error) {
	var v T
	data, err := os.ReadFile(path)
	if err != nil {
		return v, err
	}
	return v, json.Unmarshal(data, &v)
}
