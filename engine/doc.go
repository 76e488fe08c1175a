// Package engine is nbpool's only door to Docker: it runs, inspects, lists
// and removes launch containers on the local engine, keeps the launch
// network, makes sure images are present, and streams container events.
// No other package imports the Docker SDK.
//
// Everything the package creates carries LabelManaged=true, and containers
// carry LabelInstance=Options.Instance too: List and Events see only this
// instance's containers, so two daemons (or test runs) share an engine
// without touching each other's work. Inspect and Remove take any ID.
//
// Every request runs under a per-call timeout (Options.Timeout) derived from
// the caller's context; image pulls and the event stream run as long as the
// caller's context lets them. Errors wrap the package's sentinels:
// ErrUnavailable when the engine does not answer, ErrNotFound, ErrConflict
// and ErrImageUnavailable; Docker's own message is kept in the text.
//
// # Caveats
//
//   - Swap: Run sets swap equal to the memory limit (no swap). On a kernel
//     without swap accounting (cgroup v1 without swapaccount=1) Docker drops
//     the swap limit with a warning, which Run logs at debug level.
//   - List reads everything from one list request: OOMKilled is unknown
//     there, and ExitCode is parsed from Docker's status text.
//   - Events asks the engine for events since the call, by the local clock;
//     with a remote engine whose clock is skewed, events near the start can
//     be missed or repeated. Events while no stream is open are lost; List
//     after reconnecting.
//   - Engines before API 1.44 (Docker 20.10 is 1.41) check a new network's
//     name for duplicates, but not atomically: daemons creating the launch
//     network at the same moment get one network each, all with one name,
//     and the name is then ambiguous for inspect and start. EnsureNetwork
//     settles on the oldest, removes the managed duplicates it can, and Run
//     attaches containers by network ID, which starts them anyway.
package engine
