"""The dev stack: how `invoke` runs stripemeter and the demo on a developer's machine.

Not part of the service: no module of `stripemeter` imports it, and it is the only code
that needs docker and invoke (the `stack` extra, which pulls in the steps' `demo` extra).
It works on the checkout it is run from (or `STRIPEMETER_CHECKOUT`), never on where its
own files happen to be installed.

- `settings` — `StackSettings`, every variable the dev stack reads, and the checkout.
- `runner` — the `Runner` protocol and `select_runner` (local, docker, auto).
- `local` — processes on this machine with an embedded PostgreSQL.
- `docker` — one container per service and per step, through the docker SDK.
- `docker_specs` — what each container is: image, environment, ports, health check.
- `processes` — starting, watching and stopping local processes.
- `scenarios` — billing scenarios as data and the oracle their invoices are checked by.
"""
