// Package store defines the contract of pkg-cacher's content stores: objects
// addressed by a request key, written through a Writer that publishes nothing
// until Commit.
package store

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotExist is returned (wrapped) by Open and Stat for a key that has no
// complete object.
var ErrNotExist = errors.New("not in store")

// Info describes a stored object.
type Info struct {
	Key          string    `json:"key"`
	Size         int64     `json:"size"`
	SHA256       string    `json:"sha256"`                 // hex digest of the body, filled in by Commit
	ContentType  string    `json:"content_type,omitempty"` // as the upstream sent it
	LastModified time.Time `json:"last_modified,omitzero"` // the upstream's Last-Modified
	ETag         string    `json:"etag,omitempty"`         // the upstream's ETag
	Validated    time.Time `json:"validated"`              // when the upstream last confirmed this body
}

// Object is a committed object opened for reading.
type Object interface {
	io.ReadSeekCloser
	io.ReaderAt
	Info() Info
}

// Writer receives a new object's body. Readers may ReadAt the bytes written so
// far. Nothing is visible to Open until Commit; Cancel discards the body. Close
// releases the Writer after Commit or Cancel.
type Writer interface {
	io.Writer
	io.ReaderAt
	// SHA256 returns the hex digest of the bytes written so far, so a body
	// can be checked before it is committed.
	SHA256() string
	// Commit makes the body durable and visible under the key, replacing any
	// previous object. info's Size and SHA256 are set from the bytes written.
	Commit(ctx context.Context, info Info) (Info, error)
	Cancel(ctx context.Context) error
	Close() error
}

// Store is a content store.
type Store interface {
	// Open returns the committed object for key, or an error wrapping ErrNotExist.
	Open(ctx context.Context, key string) (Object, error)
	// Stat returns the committed object's Info, or an error wrapping ErrNotExist.
	Stat(ctx context.Context, key string) (Info, error)
	// Create starts a new object for key.
	Create(ctx context.Context, key string) (Writer, error)
	// SetInfo replaces the metadata of the committed object for key (for
	// example Validated after a 304); Size and SHA256 must not change.
	SetInfo(ctx context.Context, info Info) error
	// Link makes key name the committed body whose SHA-256 (lowercase hex)
	// info gives, with info's metadata, as Commit would have: the same bytes
	// reached under another key are not fetched again. A Size of -1 takes the
	// body's. It returns an error wrapping ErrNotExist when the store holds
	// no such body (or one of another size).
	Link(ctx context.Context, key string, info Info) (Info, error)
	// Delete removes the object for key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Walk calls fn for every committed object.
	Walk(ctx context.Context, fn func(Info) error) error
}
