"""A benchmark run in layers: plan, resume, preflight, output lock, store, session, writer, loop."""
