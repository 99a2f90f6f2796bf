"""The dev stack: how `invoke` runs stripemeter and the demo on a developer's machine.

Not part of the service: `pip install stripemeter` does not import it, and it is the only
code that needs docker, invoke and jq (the `stack` extra).

- `runner` — the `Runner` protocol and `select_runner` (local, docker, auto).
- `local` — processes on this machine with an embedded PostgreSQL.
- `docker` — one container per service and per step, through the docker SDK.
- `docker_specs` — what each container is: image, environment, ports, health check.
- `processes` — starting, watching and stopping local processes.
"""
