package safetensors

import (
	"fmt"
)

// Error is any failure reading or writing a safetensors file: it names the
// file and, where one is concerned, the tensor.
type Error struct {
	File   string // path, or "" for an in-memory buffer
	Tensor string // tensor name, or "" when the file as a whole is at fault
	Msg    string
	Err    error // underlying error, if any
}

func (e *Error) Error() string {
	s := "safetensors"
	if e.File != "" {
		s += ": " + e.File
	}
	if e.Tensor != "" {
		s += fmt.Sprintf(": tensor %q", e.Tensor)
	}
	s += ": " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

func errf(file, tensor, format string, args ...any) *Error {
	return &Error{File: file, Tensor: tensor, Msg: fmt.Sprintf(format, args...)}
}
