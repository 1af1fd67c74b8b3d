// Package shmem is lockless cluster-wide shared memory on fabric atomics.
//
// A Segment spans the members of a cluster. Every member allocates a portion of memory,
// registers it for remote read, write and atomic access, and publishes its descriptor to the
// others; membership is bootstrapped from a static list of fabric addresses (Config.Members),
// the same list on every member. Any member can then:
//
//   - operate on a 64-bit word of any portion, addressed by (node, offset): atomic write
//     (Store), masked swap of a bit field (MaskedSwap, SetBits), bitwise Or, And and Xor,
//     FetchAdd, Load; every one fetches the value the word had before the update;
//   - compare and act against the expected value held in its local copy (CSwap): the word is
//     swapped only if it still holds what this member last saw, and the local copy learns the
//     current value either way;
//   - keep a local copy of any portion (Refresh reads it, every fetching op updates it).
//
// Each operation is one fabric atomic on the target member's memory: no locks, and no code
// of the target member on the data path (the target's transport alone executes the atomic).
// Where the transport lacks an operation natively (verbs has only fetch-add and
// compare-and-swap) the operation is built from a compare-and-swap loop, still lock-free;
// Segment.Native tells which operations are native.
//
// On top are lock-free building blocks: Counter (cluster-wide counters), Sequencer (unique,
// increasing numbers), Bitmap (an ID allocator whose claims are single fetch-or operations)
// and Lock (a lease-based lock whose lease lapses when its holder dies).
//
// A member that dies takes its portion with it: operations on it fail with ErrMemberDown
// (after at most the operation's deadline), while operations on other portions go on. A
// member in another process on the same host is known dead at once: each such process
// advertises a liveness beacon (a robust mutex that the kernel releases when the process
// dies), which its peers read with one memory load before every operation.
package shmem
