"""The Whispr messaging benchmark (docs/performance.md): scenarios B1-B6 against the service started
as a user starts it, side by side with Matrix Synapse and the two ceilings (pgbench, a bare
WebSocket server), with load generated from separate processes.

- `runner`: PostgreSQL, the service, the scenarios, medians of repeats; `whispr-messaging bench`.
- `loadgen`: the generator process (asyncio + websockets, raw Phoenix v2 frames; raw HTTP/1.1).
- `scenarios`: B1..B6, each a function of the running bench.
- `ceilings`: pgbench scripts and the bare WebSocket broadcast/pair server.
- `synapse`: Matrix Synapse in its own virtualenv on the same PostgreSQL.
- `report`: the table, the JSON, the PNG chart.
- `progress`: the progress line.
"""
