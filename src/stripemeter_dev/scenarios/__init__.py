"""Scenarios: billing stories as data, and the oracle every invoice is checked against.

A scenario (`scenarios/<name>.toml` at the repository root) says who is billed (1-3
customers on one test clock), how (meter aggregation, price per unit or tiered), for how
many monthly cycles, and what usage arrives when: on time, duplicated, retried with the
same keys, out of order, late, in the grace window, after finalization, or sent straight
to Stripe. `steps.scenario` runs it against the stack; this package only describes it.

- `model` — the scenario as plain data (pure).
- `generator` — usage streams generated deterministically from the file's seed (pure).
- `oracle` — the expected quantity and amount of every invoice, corrections included;
  a pure function of the events and the price, importing nothing of the service or
  the emulator, so it can check them.
- `loader` — reading and checking a TOML file, one-line `ScenarioError`s.
"""
